"""Task body for the safety DAG (and `clinic-pipeline run`): `raise_safety_alerts() -> dict`.

Run it after `build_marts`. It evaluates the marts, records every alert in the lake's ledger, sends the
pending ones through each configured channel and returns the report (a small XCom).

    CLINIC_ALERTS_SMTP_CONN       SMTP connection id (default clinic_alerts_smtp)
    CLINIC_ALERTS_WEBHOOK_CONN    webhook connection id (default clinic_alerts_webhook)
    CLINIC_ALERTS_UNKNOWN         "0" to stop alerting on unanswered suicidality items (default "1")
    CLINIC_ALERTS_BREACH_RULES    comma-separated reading rules that alert (default the severe BP rules;
                                  e.g. add spo2_low,heart_rate_sustained)

A channel whose connection is not defined is skipped (said so in the log). With no channel at all the
alerts are still recorded as `pending` in the lake and a warning is logged: nothing is dropped, they go out
once a channel exists. A configured channel that fails raises AirflowException after every other alert and
channel has been tried, so Airflow retries the task; the retry sends only what is still pending.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from clinic_pipeline.lake import Lake
from clinic_pipeline.orchestration import settings

log = logging.getLogger("clinic_pipeline.alerts")


def smtp_conn_id() -> str:
    return os.environ.get("CLINIC_ALERTS_SMTP_CONN", "clinic_alerts_smtp")


def webhook_conn_id() -> str:
    return os.environ.get("CLINIC_ALERTS_WEBHOOK_CONN", "clinic_alerts_webhook")


def configured_notifiers() -> tuple[list[Any], list[str]]:
    """(notifiers whose connection exists, problems resolving a connection that is not simply undefined)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from clinic_pipeline.alerts.notifiers import SmtpAlertNotifier, WebhookAlertNotifier

    notifiers, problems = [], []
    for notifier in (SmtpAlertNotifier(smtp_conn_id()), WebhookAlertNotifier(webhook_conn_id())):
        try:
            notifier.connection  # resolved now, at run time  # noqa: B018
        except AirflowNotFoundException:
            log.info("safety alerts: no Airflow connection %r: %s channel skipped", notifier.conn_id, notifier.kind)
            continue
        except Exception as error:  # a secrets backend down is not "not configured": fail after recording
            problems.append(f"{notifier.channel}: connection lookup failed: {type(error).__name__}")
            continue
        notifiers.append(notifier)
    return notifiers, problems


def raise_safety_alerts() -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowException

    from clinic_pipeline.alerts.delivery import send_alerts
    from clinic_pipeline.alerts.evaluate import SEVERE_BP_RULES, evaluate_alerts

    lake = Lake(settings.lake_root())
    rules = [r.strip() for r in os.environ.get("CLINIC_ALERTS_BREACH_RULES", "").split(",") if r.strip()]
    alerts = evaluate_alerts(
        lake,
        breach_rules=rules or SEVERE_BP_RULES,
        include_unknown=os.environ.get("CLINIC_ALERTS_UNKNOWN", "1") != "0",
    )
    notifiers, problems = configured_notifiers()
    report = send_alerts(lake, alerts, notifiers)
    summary = report.as_dict() | {"connection_problems": problems}
    log.info(
        "safety alerts: %d raised (%d new), %d sent, %d pending, channels %s, failed %s",
        report.raised,
        report.new,
        report.sent,
        report.pending,
        report.channels or "none",
        report.failed or "none",
    )
    if problems or not report.ok:
        raise AirflowException(
            f"safety alerts not delivered: {report.failed or {}} {problems}; {report.pending} pending in the "
            f"lake, sent on the next try. First errors: {report.errors[:3]}"
        )
    return summary
