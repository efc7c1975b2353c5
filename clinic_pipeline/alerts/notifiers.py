"""Airflow notifiers for safety alerts: SMTP (stdlib smtplib) and a JSON webhook (httpx).

Both subclass `airflow.sdk.bases.notifier.BaseNotifier` and resolve their Airflow connection at send time
(never at DAG parse). `notify(context)` sends `context["safety_alert"]` (one `SafetyAlert`, one message);
used as a plain Airflow callback (no alert in the context) they send a short "safety alerting failed" notice
naming the DAG, task and run, so a broken alert task can page someone through the other channel.

Connections (ids are defaults; `CLINIC_ALERTS_SMTP_CONN` / `CLINIC_ALERTS_WEBHOOK_CONN` override them):

`clinic_alerts_smtp` (type smtp/email): host, port (465 = implicit TLS), login/password (optional), extra
    {"from": "safety@network.example", "to": ["officer@network.example"],
     "to_by_clinic": {"C001": ["safety@c001.example"]},   # optional: a clinic's alerts also go here
     "starttls": true, "ssl": false, "timeout": 30, "max_attempts": 3, "retry_delay_s": 2}
`clinic_alerts_webhook` (type http): host = full URL (or host + schema + port + extra "path"), extra
    {"token": "...", "headers": {...}, "timeout": 10, "max_attempts": 4, "retry_delay_s": 1, "verify": true}
    The body is `SafetyAlert.payload()` as JSON; `Idempotency-Key` is the alert's reference. Retries on
    5xx, 408, 429, timeouts and connection errors (backoff doubling, `Retry-After` honoured up to 30 s);
    any other status fails at once (redirects are not followed: a POST is never re-sent elsewhere).

Errors raised (`AlertDeliveryError`) name the channel and the failure (status, exception class), never the
message content.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from clinic_pipeline.alerts.model import URGENT, SafetyAlert

log = logging.getLogger("clinic_pipeline.alerts")

DEFAULT_SMTP_CONN = "clinic_alerts_smtp"
DEFAULT_WEBHOOK_CONN = "clinic_alerts_webhook"
RETRYABLE_HTTP = {408, 429, 500, 502, 503, 504}


class AlertDeliveryError(Exception):
    """A channel failed to deliver (after its own retries)."""


def _get_connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def _failure_notice(context: dict[str, Any]) -> tuple[str, str]:
    """Subject and text for a plain Airflow callback: which task failed (no patient data exists here)."""
    ti = context.get("ti") or context.get("task_instance")
    dag = getattr(context.get("dag"), "dag_id", None) or getattr(ti, "dag_id", "?")
    task = getattr(ti, "task_id", "?")
    run = getattr(context.get("dag_run"), "run_id", None) or context.get("run_id", "?")
    subject = f"[URGENT] Clinic pipeline: safety alerting task failed ({dag}.{task})"
    text = (
        f"The task {task} of DAG {dag} (run {run}) failed. Safety alerts may be pending in the lake "
        "(state/alerts/ledger.parquet): they are sent on the next successful run. Check the task log.\n"
    )
    return subject, text


class AlertNotifier(BaseNotifier):
    """Common part: a channel name, connection lookup, retries with backoff."""

    kind = "base"
    template_fields = ()

    def __init__(self, conn_id: str) -> None:
        super().__init__()
        self.conn_id = conn_id
        self._conn: Any = None

    @property
    def channel(self) -> str:
        return f"{self.kind}:{self.conn_id}"

    @property
    def connection(self) -> Any:
        if self._conn is None:
            self._conn = _get_connection(self.conn_id)
        return self._conn

    @property
    def extra(self) -> dict[str, Any]:
        return self.connection.extra_dejson or {}

    def notify(self, context: dict[str, Any]) -> None:
        alert = context.get("safety_alert")
        if isinstance(alert, SafetyAlert):
            self.send_alert(alert)
        else:
            self.send_notice(*_failure_notice(context))

    def send_alert(self, alert: SafetyAlert) -> None:
        raise NotImplementedError

    def send_notice(self, subject: str, text: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release a kept-open session (called once per run by `send_alerts`)."""

    def _retrying(self, action: Any, retryable: Any, what: str) -> Any:
        attempts = max(1, int(self.extra.get("max_attempts", self.default_attempts)))
        delay = float(self.extra.get("retry_delay_s", self.default_delay_s))
        for attempt in range(1, attempts + 1):
            try:
                return action()
            except AlertDeliveryError:
                raise
            except Exception as error:
                wait = retryable(error)
                if wait is None or attempt == attempts:
                    raise AlertDeliveryError(f"{self.channel}: {what} failed: {_describe(error)}") from error
                wait = max(wait, delay * 2 ** (attempt - 1))
                log.warning(
                    "%s: %s attempt %d/%d failed (%s), retrying in %.1f s",
                    self.channel,
                    what,
                    attempt,
                    attempts,
                    _describe(error),
                    wait,
                )
                self.close()
                time.sleep(wait)
        raise AssertionError("unreachable")

    default_attempts = 3
    default_delay_s = 1.0


def _describe(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{type(error).__name__} {error.smtp_code}"
    if isinstance(error, HttpStatusError):
        return f"HTTP {error.status}"
    return f"{type(error).__name__}: {str(error)[:120]}"


# --- SMTP ------------------------------------------------------------------------------------------------


class SmtpAlertNotifier(AlertNotifier):
    """One plain-text email per alert through the SMTP connection (session kept open within a run)."""

    kind = "smtp"
    default_attempts = 3
    default_delay_s = 2.0

    def __init__(self, conn_id: str = DEFAULT_SMTP_CONN) -> None:
        super().__init__(conn_id)
        self._client: smtplib.SMTP | None = None

    def recipients(self, clinic_id: str | None) -> list[str]:
        def as_list(value: Any) -> list[str]:
            if not value:
                return []
            items = value.split(",") if isinstance(value, str) else value
            return [str(v).strip() for v in items if str(v).strip()]

        by_clinic = self.extra.get("to_by_clinic") or {}
        found = as_list(by_clinic.get(clinic_id)) if clinic_id else []
        return list(dict.fromkeys(found + as_list(self.extra.get("to"))))

    def _open(self) -> smtplib.SMTP:
        if self._client is not None:
            return self._client
        conn, extra = self.connection, self.extra
        if not conn.host:
            raise AlertDeliveryError(f"{self.channel}: the connection has no host")
        port = int(conn.port or 25)
        timeout = float(extra.get("timeout", 30))
        context = ssl.create_default_context()
        if extra.get("ssl", port == 465):
            client: smtplib.SMTP = smtplib.SMTP_SSL(conn.host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(conn.host, port, timeout=timeout)
            if extra.get("starttls", False):
                client.starttls(context=context)
        if conn.login:
            client.login(conn.login, conn.password or "")
        self._client = client
        return client

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):  # already gone: nothing to release
                self._client.quit()
            self._client = None

    def _message(self, subject: str, text: str, to: list[str], priority: str | None) -> EmailMessage:
        sender = self.extra.get("from")
        if not sender:
            raise AlertDeliveryError(f"{self.channel}: the connection's extra has no 'from' address")
        if not to:
            raise AlertDeliveryError(f"{self.channel}: no recipient ('to' / 'to_by_clinic' in the extra)")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="clinic-pipeline.invalid")
        if priority == URGENT:
            msg["X-Priority"], msg["Importance"] = "1", "high"
        msg.set_content(text)
        return msg

    def _deliver(self, msg: EmailMessage) -> None:
        def send() -> None:
            refused = self._open().send_message(msg)
            if refused:  # some recipients took it: not retried (it would duplicate for the others)
                log.warning("%s: %d recipient(s) refused the message", self.channel, len(refused))

        def retryable(error: Exception) -> float | None:
            if isinstance(error, smtplib.SMTPResponseException):
                return 0.0 if 400 <= error.smtp_code < 500 else None
            if isinstance(error, smtplib.SMTPRecipientsRefused):
                codes = [code for code, _ in error.recipients.values()]
                return 0.0 if codes and all(400 <= c < 500 for c in codes) else None
            if isinstance(error, (smtplib.SMTPServerDisconnected, OSError)):
                return 0.0
            return None

        self._retrying(send, retryable, "SMTP send")

    def send_alert(self, alert: SafetyAlert) -> None:
        msg = self._message(alert.subject(), alert.text(), self.recipients(alert.clinic_id), alert.priority)
        msg["X-Clinic-Alert-Ref"] = alert.alert_ref
        self._deliver(msg)

    def send_notice(self, subject: str, text: str) -> None:
        try:
            self._deliver(self._message(subject, text, self.recipients(None), URGENT))
        finally:
            self.close()


# --- webhook ---------------------------------------------------------------------------------------------


class HttpStatusError(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class WebhookAlertNotifier(AlertNotifier):
    """POST one JSON document per alert to the webhook connection's URL."""

    kind = "webhook"
    default_attempts = 4
    default_delay_s = 1.0

    def __init__(self, conn_id: str = DEFAULT_WEBHOOK_CONN) -> None:
        super().__init__(conn_id)
        self._client: Any = None

    @property
    def url(self) -> str:
        conn, extra = self.connection, self.extra
        host = conn.host or ""
        if not host:
            raise AlertDeliveryError(f"{self.channel}: the connection has no host (the webhook URL)")
        if "://" in host:
            return host + str(extra.get("path", ""))
        port = f":{conn.port}" if conn.port else ""
        return f"{conn.schema or 'https'}://{host}{port}{extra.get('path', '')}"

    def _http(self) -> Any:
        import httpx

        if self._client is None:
            extra = self.extra
            self._client = httpx.Client(
                timeout=float(extra.get("timeout", 10)),
                follow_redirects=False,
                verify=extra.get("verify", True),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def headers(self, idempotency_key: str | None) -> dict[str, str]:
        extra = self.extra
        headers = {str(k): str(v) for k, v in (extra.get("headers") or {}).items()}
        headers["User-Agent"] = "clinic-pipeline-alerts/1"
        if extra.get("token"):
            headers["Authorization"] = f"Bearer {extra['token']}"
        elif self.connection.login:
            import base64

            pair = f"{self.connection.login}:{self.connection.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def post(self, document: dict[str, Any], idempotency_key: str | None = None) -> None:
        import httpx

        url, headers = self.url, self.headers(idempotency_key)

        def send() -> None:
            response = self._http().post(url, json=document, headers=headers)
            if not 200 <= response.status_code < 300:
                raise HttpStatusError(response.status_code, _retry_after(response.headers.get("Retry-After")))

        def retryable(error: Exception) -> float | None:
            if isinstance(error, HttpStatusError):
                return (error.retry_after or 0.0) if error.status in RETRYABLE_HTTP else None
            if isinstance(error, (httpx.TimeoutException, httpx.TransportError)):
                return 0.0
            return None

        self._retrying(send, retryable, "webhook POST")

    def send_alert(self, alert: SafetyAlert) -> None:
        self.post(alert.payload(), alert.alert_ref)

    def send_notice(self, subject: str, text: str) -> None:
        try:
            self.post({"schema": "clinic-pipeline-notice/1", "priority": URGENT, "subject": subject, "text": text})
        finally:
            self.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return min(30.0, max(0.0, float(value))) if value else None
    except ValueError:  # an HTTP date: use our own backoff
        return None
