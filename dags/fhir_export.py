"""
### FHIR R4 export and delivery

Scheduled on the staged tables and the safety marts: whenever an ingest DAG stages new rows (and again when
the safety DAG has rebuilt the marts, whose rule-detected adverse events it also exports), this DAG maps the whole
staged network to FHIR R4 (Organization, Patient, Encounter, MedicationAdministration, vital-sign Observations,
QuestionnaireResponse + scored Observation, AdverseEvent, Provenance), validates every resource (vectorised
row checks plus the full validator once per resource shape), writes the Bulk Data export
(`fhir/export/<Type>.ndjson` + `manifest.json`, rejected rows in `quarantine/fhir/`), then delivers the
changes to the FHIR server of the Airflow connection `clinic_fhir` as transaction Bundles through a durable
outbox (conditional updates by identifier: reruns and redeliveries create nothing new). Produces `fhir_export`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetAny, dag, task

from clinic_pipeline.orchestration.assets import STAGED_TABLES, fhir_export_asset, safety_marts_asset, staged_asset

FHIR_SOURCES = [t for tables in STAGED_TABLES.values() for t in tables if t != "concomitant_medications"]


@dag(
    dag_id="fhir_export",
    schedule=AssetAny(*(staged_asset(t) for t in FHIR_SOURCES), safety_marts_asset()),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-engineering", "retries": 3, "retry_delay": pendulum.duration(minutes=2)},
    tags=["fhir", "interoperability"],
    doc_md=__doc__,
)
def fhir_export():
    @task(outlets=[fhir_export_asset()])
    def export_bulk_ndjson():
        from clinic_pipeline.orchestration.fhir_tasks import export_bulk

        return export_bulk()

    @task
    def deliver_to_fhir_server():
        from clinic_pipeline.orchestration.fhir_tasks import deliver_export

        return deliver_export()

    export_bulk_ndjson() >> deliver_to_fhir_server()


fhir_export()
