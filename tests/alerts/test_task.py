"""The task body `raise_safety_alerts()`: channels from Airflow connections, skipped when undefined, alerts
kept pending with no channel, AirflowException when a configured channel fails, and the retry sends the rest."""

from __future__ import annotations

import logging

import pytest

from clinic_pipeline.alerts.ledger import AlertLedger
from tests.alerts.conftest import smtp_connection, webhook_connection


@pytest.fixture
def task_lake(lake, monkeypatch):
    monkeypatch.setenv("CLINIC_LAKE", str(lake.root))
    for name in ("CLINIC_ALERTS_SMTP_CONN", "CLINIC_ALERTS_WEBHOOK_CONN", "CLINIC_ALERTS_UNKNOWN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_CLINIC_ALERTS_SMTP", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_CLINIC_ALERTS_WEBHOOK", raising=False)
    return lake


def test_no_channel_keeps_every_alert_pending_then_sends_them_when_configured(
    task_lake, monkeypatch, caplog, capsys, smtp, webhook
):
    from clinic_pipeline.alerts.task import raise_safety_alerts

    with caplog.at_level(logging.INFO, logger="clinic_pipeline.alerts"):
        summary = raise_safety_alerts()
    assert summary["ok"] and summary["channels"] == [] and summary["pending"] == summary["raised"] > 80
    logged = caplog.text + capsys.readouterr().out  # Airflow's logging may route records to stdout
    assert "NO notification channel configured" in logged
    assert "no Airflow connection 'clinic_alerts_smtp'" in logged
    assert "no Airflow connection 'clinic_alerts_webhook'" in logged
    assert AlertLedger.load(task_lake).counts()["pending"] == summary["raised"]

    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_SMTP", smtp_connection(smtp))  # only SMTP
    summary2 = raise_safety_alerts()
    assert summary2["ok"] and summary2["channels"] == ["smtp:clinic_alerts_smtp"]
    assert summary2["sent"] == summary["raised"] and summary2["new"] == 0 and summary2["pending"] == 0
    assert len(smtp.received) == summary["raised"]

    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_WEBHOOK", webhook_connection(webhook))
    summary3 = raise_safety_alerts()
    assert summary3["sent"] == 0 and webhook.received == [], "sent alerts are not replayed to a new channel"


def test_a_failing_channel_fails_the_task_and_the_retry_sends_only_what_is_owed(task_lake, monkeypatch, smtp, webhook):
    from airflow.sdk.exceptions import AirflowException

    from clinic_pipeline.alerts.task import raise_safety_alerts

    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_SMTP", smtp_connection(smtp))
    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_WEBHOOK", webhook_connection(webhook, max_attempts=1))
    webhook.default_status = 503
    with pytest.raises(AirflowException, match="webhook:clinic_alerts_webhook"):
        raise_safety_alerts()
    n = len(smtp.received)
    assert n > 80 and len(webhook.received) == 3, "given up for this run after 3 alerts failed in a row"

    webhook.default_status = 200
    webhook.received.clear()
    summary = raise_safety_alerts()  # what Airflow's retry runs
    assert summary["ok"] and summary["delivered"] == {"webhook:clinic_alerts_webhook": n}
    assert len(smtp.received) == n and len(webhook.received) == n


def test_connection_ids_and_unknown_flags_come_from_the_environment(task_lake, monkeypatch, smtp):
    from clinic_pipeline.alerts.task import raise_safety_alerts

    monkeypatch.setenv("CLINIC_ALERTS_SMTP_CONN", "network_safety_mail")
    monkeypatch.setenv("AIRFLOW_CONN_NETWORK_SAFETY_MAIL", smtp_connection(smtp))
    monkeypatch.setenv("CLINIC_ALERTS_BREACH_RULES", "severe_bp_single")
    summary = raise_safety_alerts()
    assert summary["channels"] == ["smtp:network_safety_mail"] and summary["ok"]
    assert summary["by_kind"]["severe_bp_breach"] == 1
