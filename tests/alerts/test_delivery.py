"""Alerts delivered to a real local SMTP server and a real webhook receiver through Airflow connections:
one notification per alert and channel, nothing new on a rerun, a failed channel retried next run (only that
channel, once), and no identifier of the EHR in any byte the servers received."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from clinic_pipeline.alerts.delivery import send_alerts
from clinic_pipeline.alerts.evaluate import evaluate_alerts
from clinic_pipeline.alerts.ledger import AlertLedger
from tests.alerts.conftest import WEBHOOK_TOKEN, smtp_connection, webhook_connection


def notifiers():
    from clinic_pipeline.alerts.notifiers import SmtpAlertNotifier, WebhookAlertNotifier

    return [SmtpAlertNotifier(), WebhookAlertNotifier()]


def run(lake):
    """One alerting run as the task does it: evaluate the marts, send through both channels."""
    return send_alerts(lake, evaluate_alerts(lake), notifiers())


def refs_of_mail(smtp) -> list[str]:
    return [m.message["X-Clinic-Alert-Ref"] for m in smtp.received]


def refs_of_posts(webhook) -> list[str]:
    return [r.headers["Idempotency-Key"] for r in webhook.received]


def assert_no_identifiers(data: bytes, identifiers: dict[str, set[str]]) -> None:
    text = data.decode("utf-8")
    for kind in ("patient_id", "mrn", "redcap_record_id", "birth_date", "session_id"):
        found = [value for value in identifiers[kind] if value in text]
        assert not found, (kind, found[:3])
    names = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, identifiers["name"]))) + r")\b")
    assert not names.findall(text), names.findall(text)[:3]


def test_one_notification_per_alert_and_channel_then_nothing_on_rerun(lake, channels, smtp, webhook, identifiers):
    alerts = evaluate_alerts(lake)
    report = send_alerts(lake, alerts, notifiers())
    n = len(alerts)
    assert n > 80
    assert report.ok and report.new == n and report.sent == n and report.pending == 0
    assert report.delivered == {"smtp:clinic_alerts_smtp": n, "webhook:clinic_alerts_webhook": n}
    assert sorted(refs_of_mail(smtp)) == sorted(refs_of_posts(webhook)) == sorted(a.alert_ref for a in alerts)
    assert smtp.connections == 1, "one SMTP session per run"

    # The email: routed, authenticated, priority and event in the subject, re-identification explained.
    by_ref = {a.alert_ref: a for a in alerts}
    for mail in smtp.received:
        alert = by_ref[mail.message["X-Clinic-Alert-Ref"]]
        assert mail.authenticated_as == "clinic-alerts"
        assert mail.rcpt_to == ["safety-officer@network.example"]
        assert mail.message["Subject"].startswith(f"[{alert.priority.upper()}] Clinic {alert.clinic_id}")
        body = mail.message.get_payload(decode=True).decode()
        assert alert.patient_token in body and f"Infusion number: {alert.infusion_number}" in body
        assert "pseudonym lookup" in body
    # The webhook: bearer token, JSON body with the same fields.
    for request in webhook.received:
        assert request.headers["Authorization"] == f"Bearer {WEBHOOK_TOKEN}"
        body = request.json
        alert = by_ref[body["alert_ref"]]
        assert body["schema"] == "clinic-safety-alert/1"
        assert (body["clinic_id"], body["patient_token"], body["infusion_number"], body["kind"]) == (
            alert.clinic_id,
            alert.patient_token,
            alert.infusion_number,
            alert.kind,
        )
        assert set(body) >= {"priority", "course_day", "event", "term_or_rule", "raised_at", "reidentification"}
    assert Counter(r.json["kind"] for r in webhook.received) == Counter(a.kind for a in alerts)

    # No name, MRN, birth date, patient, REDCap or session id in any byte received (the check does find one).
    with pytest.raises(AssertionError):
        assert_no_identifiers(f"x {min(identifiers['mrn'])} y".encode(), identifiers)
    assert_no_identifiers(smtp.all_bytes(), identifiers)
    assert_no_identifiers(webhook.all_bytes(), identifiers)

    # Rerun (and a re-delivery of the same staged data): nothing new is sent.
    assert evaluate_alerts(lake) == []
    again = run(lake)
    assert again.new == 0 and again.sent == 0 and again.delivered == {} and again.ok
    assert len(smtp.received) == n and len(webhook.received) == n
    # The ledger knows every alert as sent on both channels.
    ledger = AlertLedger.load(lake)
    assert ledger.counts() == {"pending": 0, "sent": n}
    both = {"smtp:clinic_alerts_smtp", "webhook:clinic_alerts_webhook"}
    assert all(ledger.channels_sent(key) == both for key in ledger.rows)


def test_failed_webhook_stays_pending_and_is_sent_once_next_run(lake, channels, smtp, webhook):
    webhook.default_status = 500
    first = run(lake)
    n = first.raised
    assert not first.ok and first.failed == {"webhook:clinic_alerts_webhook": n}
    assert first.delivered == {"smtp:clinic_alerts_smtp": n} and first.sent == 0 and first.pending == n
    # 3 alerts tried max_attempts=3 times each on a 5xx, then the channel is left alone for this run.
    assert len(webhook.received) == 3 * 3 and len(first.errors) == 3 and "HTTP 500" in first.errors[0]
    ledger = AlertLedger.load(lake)
    assert ledger.counts()["pending"] == n
    assert sum("HTTP 500" in (r["last_error"] or "") for r in ledger.rows.values()) == 3

    webhook.default_status = 200
    webhook.received.clear()
    second = run(lake)
    assert second.ok and second.sent == n and second.pending == 0 and second.new == 0
    assert second.delivered == {"webhook:clinic_alerts_webhook": n}, "SMTP already had them: not sent twice"
    assert len(smtp.received) == n
    assert Counter(refs_of_posts(webhook)) == Counter(dict.fromkeys(refs_of_mail(smtp), 1))

    third = run(lake)
    assert third.delivered == {} and len(webhook.received) == n and len(smtp.received) == n


def test_transient_errors_are_retried_within_the_run_and_client_errors_are_not(lake, channels, smtp, webhook):
    from collections import deque

    alerts = evaluate_alerts(lake)[:3]
    transient, rejected, fine = alerts
    webhook.failing_refs = {transient.alert_ref: deque([503, 502]), rejected.alert_ref: deque([400])}
    smtp.fail_next(451)  # the first message: "try again later"
    report = send_alerts(lake, alerts, notifiers())
    assert report.failed == {"webhook:clinic_alerts_webhook": 1} and "HTTP 400" in report.errors[0]
    assert Counter(refs_of_posts(webhook)) == {transient.alert_ref: 3, rejected.alert_ref: 1, fine.alert_ref: 1}
    assert sorted(refs_of_mail(smtp)) == sorted(a.alert_ref for a in alerts) and smtp.rejected == 1
    ledger = AlertLedger.load(lake)
    assert [k for k, r in ledger.rows.items() if r["status"] == "pending"] == [rejected.dedupe_key]


def test_smtp_permanent_failure_and_server_down_leave_alerts_pending(lake, monkeypatch, smtp, webhook):
    alerts = evaluate_alerts(lake)[:2]
    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_WEBHOOK", webhook_connection(webhook))
    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_SMTP", smtp_connection(smtp))
    smtp.fail_next(554, times=1)
    report = send_alerts(lake, alerts, notifiers())
    assert report.failed == {"smtp:clinic_alerts_smtp": 1} and "554" in report.errors[0]
    assert report.sent == 1 and report.pending == 1

    smtp.stop()
    report = send_alerts(lake, [], notifiers())  # the pending one, from the ledger
    assert report.failed == {"smtp:clinic_alerts_smtp": 1} and "ConnectionRefused" in report.errors[0]
    assert report.delivered == {}, "the webhook already had it"

    from tests.alerts.servers import SmtpTestServer

    server = SmtpTestServer(credentials=("clinic-alerts", "not-a-real-secret"))
    try:
        monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_SMTP", smtp_connection(server))
        report = send_alerts(lake, [], notifiers())
        assert report.ok and report.sent == 1 and report.pending == 0 and len(server.received) == 1
    finally:
        server.stop()


def test_wrong_smtp_password_fails_without_sending(lake, monkeypatch, smtp):
    import json

    conn = json.loads(smtp_connection(smtp))
    conn["password"] = "wrong"
    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_SMTP", json.dumps(conn))
    from clinic_pipeline.alerts.notifiers import SmtpAlertNotifier

    report = send_alerts(lake, evaluate_alerts(lake)[:1], [SmtpAlertNotifier()])
    assert not report.ok and "535" in report.errors[0] and smtp.received == []


def test_clinic_recipients_and_urgent_headers(lake, monkeypatch, smtp):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLINIC_ALERTS_SMTP",
        smtp_connection(smtp, to_by_clinic={"C004": ["safety@c004.example"]}, to="officer@network.example"),
    )
    from clinic_pipeline.alerts.notifiers import SmtpAlertNotifier

    alerts = evaluate_alerts(lake)
    assert send_alerts(lake, alerts, [SmtpAlertNotifier()]).ok
    clinic_of = {a.alert_ref: a for a in alerts}
    for mail in smtp.received:
        alert = clinic_of[mail.message["X-Clinic-Alert-Ref"]]
        expected = ["safety@c004.example"] if alert.clinic_id == "C004" else []
        assert mail.rcpt_to == [*expected, "officer@network.example"]
        assert (mail.message["X-Priority"] == "1") == (alert.priority == "urgent")


def test_notifier_as_plain_airflow_callback_sends_a_failure_notice(monkeypatch, smtp, webhook):
    """Used as on_failure_callback (no alert in the context) the notifiers say which task failed."""
    from types import SimpleNamespace

    from clinic_pipeline.alerts.notifiers import SmtpAlertNotifier, WebhookAlertNotifier

    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_SMTP", smtp_connection(smtp))
    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_WEBHOOK", webhook_connection(webhook))
    context = {
        "ti": SimpleNamespace(dag_id="safety_review", task_id="raise_safety_alerts"),
        "dag_run": SimpleNamespace(run_id="scheduled__1"),
    }
    SmtpAlertNotifier()(context)
    WebhookAlertNotifier()(context)
    assert "raise_safety_alerts" in smtp.received[0].message["Subject"]
    assert webhook.received[0].json["schema"] == "clinic-pipeline-notice/1"


@pytest.mark.parametrize("status", [302, 404])
def test_webhook_redirects_and_client_errors_are_not_followed_or_retried(lake, monkeypatch, webhook, status):
    from clinic_pipeline.alerts.notifiers import WebhookAlertNotifier

    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_WEBHOOK", webhook_connection(webhook))
    webhook.default_status = status
    report = send_alerts(lake, evaluate_alerts(lake)[:1], [WebhookAlertNotifier()])
    assert report.failed and len(webhook.received) == 1 and f"HTTP {status}" in report.errors[0]
