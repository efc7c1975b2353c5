"""Safety alerts: serious adverse events, severe BP breaches and suicidality flags, one notification each.

    evaluate_alerts(lake) -> list[SafetyAlert]                      clinic_pipeline.alerts.evaluate
    send_alerts(lake, alerts, notifiers) -> AlertReport             clinic_pipeline.alerts.delivery
    SmtpAlertNotifier, WebhookAlertNotifier (Airflow notifiers)     clinic_pipeline.alerts.notifiers
    raise_safety_alerts() -> dict (task body)                       clinic_pipeline.alerts.task

Import the submodules directly: the notifiers import Airflow (seconds), the rest pandas. See docs/alerts.md.
"""
