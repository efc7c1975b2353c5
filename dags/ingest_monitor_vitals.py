"""
### Ingest patient-monitor vitals (HL7 v2 ORU^R01 batches)

Woken by a monitor batch marker (or a Redis Stream entry), and every few minutes by the sweep. Each run
processes every announced batch not yet in the ledger: raw copy with checksum, per-message parsing
(python-hl7), unit conversion (kPa, degF), reference checks against the staged EHR sessions, GX gates,
staged Parquet per clinic and service date, quarantine with batch, row key (MSH-10), rule and reason.
Batches of a day the EHR has not been read through yet wait; the EHR DAG staging new sessions wakes
this DAG again (`staged_infusion_sessions` is in its schedule). Produces `staged_vital_signs`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from clinic_pipeline.orchestration.assets import ingest_schedule, staged_asset


@dag(
    dag_id="ingest_monitor_vitals",
    schedule=ingest_schedule("monitor", also_after=(staged_asset("infusion_sessions"),)),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-engineering", "retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    tags=["ingest", "monitor", "hl7"],
    doc_md=__doc__,
)
def ingest_monitor_vitals():
    @task(outlets=[staged_asset("vital_signs")])
    def ingest_monitor_batches():
        from clinic_pipeline.orchestration.tasks import ingest_files

        return ingest_files("monitor")

    @task
    def publish_quality_docs():
        from clinic_pipeline.orchestration.tasks import build_quality_docs

        return build_quality_docs()

    ingest_monitor_batches() >> publish_quality_docs()


ingest_monitor_vitals()
