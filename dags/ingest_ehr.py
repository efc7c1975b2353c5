"""
### Ingest the EHR: patients, infusion sessions, adverse events, concomitant medications

Woken by the EHR's day markers (or a Redis Stream entry), and every few minutes by the sweep. Each run reads
every EHR row changed since the stored watermark (`updated_at`), stages it (UTC, kg, references checked),
runs the GX gates and upserts by key: a late correction replaces its staged row, it never duplicates it.
Rows that break a critical rule go to the lake's `quarantine/ehr/`; the run fails red when a gate stops
the batch. Produces the `staged_*` EHR assets.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from clinic_pipeline.orchestration.assets import STAGED_TABLES, ingest_schedule, staged_asset


@dag(
    dag_id="ingest_ehr",
    schedule=ingest_schedule("ehr"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one reader advances the watermark at a time
    default_args={"owner": "data-engineering", "retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    tags=["ingest", "ehr"],
    doc_md=__doc__,
)
def ingest_ehr():
    @task(outlets=[staged_asset(t) for t in STAGED_TABLES["ehr"]])
    def ingest_ehr_changes(dag_run=None):
        from clinic_pipeline.orchestration.tasks import ingest_ehr_changes

        return ingest_ehr_changes(dag_run.run_after)

    @task
    def publish_quality_docs():
        from clinic_pipeline.orchestration.tasks import build_quality_docs

        return build_quality_docs()

    ingest_ehr_changes() >> publish_quality_docs()


ingest_ehr()
