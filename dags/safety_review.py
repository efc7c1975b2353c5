"""
### Safety review: marts, alerts and the safety officers' dashboard

Scheduled on the staged tables: as soon as an ingest DAG stages new rows, this DAG evaluates the safety rules
of each clinic protocol (threshold breaches, CTCAE grades with their version, monitoring compliance,
dissociation at discharge, suicidality flags), rebuilds the marts (`marts/` in the lake), sends one
notification per new serious adverse event, severe blood-pressure breach or suicidality flag (SMTP and webhook
connections `clinic_alerts_smtp` / `clinic_alerts_webhook`; deduplicated across reruns, pseudonymous), and
publishes the static dashboard (`dashboards/<run>/` and `dashboards/latest/`, small cells suppressed).
Alerts run before the dashboard: a safety officer hears of a serious event first. Produces `safety_marts`
(the FHIR DAG exports the rule-detected events from it) and `safety_dashboard`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetAny, dag, get_current_context, task

from clinic_pipeline.orchestration.assets import clinical_staged_assets, safety_dashboard_asset, safety_marts_asset


@dag(
    dag_id="safety_review",
    schedule=AssetAny(*clinical_staged_assets()),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-engineering", "retries": 3, "retry_delay": pendulum.duration(minutes=1)},
    tags=["safety", "dashboard", "alerts"],
    doc_md=__doc__,
)
def safety_review():
    @task(outlets=[safety_marts_asset()])
    def build_marts():
        from clinic_pipeline.orchestration.safety_tasks import build_safety_marts

        return build_safety_marts()

    @task
    def raise_alerts():
        from clinic_pipeline.alerts.task import raise_safety_alerts

        return raise_safety_alerts()

    # Published even when an alert channel is down (raise_alerts failed and will retry): the officers still see it.
    @task(outlets=[safety_dashboard_asset()], trigger_rule="all_done")
    def publish_dashboard():
        from clinic_pipeline.orchestration.safety_tasks import publish_safety_dashboard

        return publish_safety_dashboard(get_current_context()["run_id"])

    build_marts() >> raise_alerts() >> publish_dashboard()


safety_review()
