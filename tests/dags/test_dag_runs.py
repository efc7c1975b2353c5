"""The ingest DAGs run in-process (dag.test) over a simulated landing zone and stage real data."""

from __future__ import annotations

import json

from tests.conftest import generate
from tests.dags.conftest import DATA


def _states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_ingest_dags_stage_a_landing_zone_and_skip_when_nothing_is_new(dagbag):
    generate(DATA, clinics=2, days=2, seed=31, faults=0.03)
    for dag_id in ("ingest_ehr", "ingest_monitor_vitals", "ingest_epro_questionnaires"):
        run = dagbag.get_dag(dag_id).test()
        assert str(run.state) == "success", (dag_id, _states(run))
        assert "skipped" not in _states(run).values()
    lake = DATA / "lake"
    for table in ("patients", "infusion_sessions", "vital_signs", "questionnaire_responses", "clinician_ratings"):
        assert list((lake / "staged" / table).rglob("*.parquet")), table
    reconciliation = json.loads((lake / "quality" / "reconciliation.json").read_text())
    assert reconciliation["all_reconciled"] and len(reconciliation["batches"]) > 6
    assert (lake / "quality" / "data_docs" / "index.html").exists()

    again = dagbag.get_dag("ingest_monitor_vitals").test()
    assert _states(again)["ingest_monitor_batches"] == "skipped", "a run with nothing new emits no asset event"

    safety = dagbag.get_dag("safety_review").test()
    assert _states(safety) == {"build_marts": "success", "raise_alerts": "success", "publish_dashboard": "success"}
    assert (lake / "marts" / "_manifest.json").exists()
    assert (lake / "dashboards" / "latest" / "index.html").exists()
    assert (lake / "state" / "alerts" / "ledger.parquet").exists(), "no channel configured: alerts kept pending"

    fhir = dagbag.get_dag("fhir_export").test()
    assert _states(fhir) == {"export_bulk_ndjson": "success", "deliver_to_fhir_server": "skipped"}, (
        "without a clinic_fhir connection the export stands alone"
    )
    manifest = json.loads((lake / "fhir" / "export" / "manifest.json").read_text())
    counts = {o["type"]: o["count"] for o in manifest["output"]}
    assert counts["Encounter"] > 0 and counts["Observation"] > counts["Encounter"]
