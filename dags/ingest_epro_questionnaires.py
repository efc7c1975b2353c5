"""
### Ingest questionnaires: patient-app FHIR QuestionnaireResponses and REDCap clinician ratings

Woken by an ePRO or REDCap batch marker (or a Redis Stream entry), and every few minutes by the sweep.
PHQ-9, GAD-7 and the C-SSRS screener arrive as FHIR R4 NDJSON (validated with fhir.resources), CADSS and
MADRS as REDCap CSV (local times turned into UTC with the clinic's zone). Each form is scored; a partial
form is staged without a total and a missing suicidality answer is marked for review, never read as "no".
Batches wait until the EHR has been read through their day; new staged EHR sessions wake this DAG again.
Produces `staged_questionnaire_responses` and `staged_clinician_ratings`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from clinic_pipeline.orchestration.assets import ingest_schedule, staged_asset


@dag(
    dag_id="ingest_epro_questionnaires",
    schedule=ingest_schedule("epro", "redcap", also_after=(staged_asset("infusion_sessions"),)),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-engineering", "retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    tags=["ingest", "epro", "fhir", "redcap"],
    doc_md=__doc__,
)
def ingest_epro_questionnaires():
    @task(outlets=[staged_asset("questionnaire_responses")])
    def ingest_patient_app_batches():
        from clinic_pipeline.orchestration.tasks import ingest_files

        return ingest_files("epro")

    @task(outlets=[staged_asset("clinician_ratings")])
    def ingest_redcap_batches():
        from clinic_pipeline.orchestration.tasks import ingest_files

        return ingest_files("redcap")

    @task(trigger_rule="none_failed_min_one_success")
    def publish_quality_docs():
        from clinic_pipeline.orchestration.tasks import build_quality_docs

        return build_quality_docs()

    [ingest_patient_app_batches(), ingest_redcap_batches()] >> publish_quality_docs()


ingest_epro_questionnaires()
