"""DAG policy (mozilla/telemetry-airflow style): every DAG is documented, owned, retried, event-driven."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from clinic_pipeline.orchestration.assets import STAGED_TABLES
from tests.dags.conftest import REPO

STAGED_TABLES_ALL = [t for tables in STAGED_TABLES.values() for t in tables]

INGEST_DAG_IDS = {"ingest_ehr", "ingest_monitor_vitals", "ingest_epro_questionnaires"}
DAG_IDS = {*INGEST_DAG_IDS, "fhir_export", "safety_review"}


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= DAG_IDS


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_dag_policy(dagbag, dag_id):
    dag = dagbag.get_dag(dag_id)
    assert dag.doc_md and len(dag.doc_md) > 200
    assert dag.tags
    assert ("ingest" in dag.tags) == (dag_id in INGEST_DAG_IDS)
    assert dag.max_active_runs == 1, "two concurrent runs would race for the same batches"
    assert not dag.catchup
    for task in dag.tasks:
        assert task.owner == "data-engineering"
        assert task.retries >= 1


@pytest.mark.parametrize(
    ("dag_id", "sources"),
    [
        ("ingest_ehr", {"ehr"}),
        ("ingest_monitor_vitals", {"monitor"}),
        ("ingest_epro_questionnaires", {"epro", "redcap"}),
    ],
)
def test_dags_are_scheduled_on_watched_landing_assets_and_a_sweep(dagbag, dag_id, sources):
    from airflow.sdk import AssetOrTimeSchedule

    from clinic_pipeline.triggers.landing_markers import LandingMarkerTrigger

    dag = dagbag.get_dag(dag_id)
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assets = [a for a in dag.timetable.asset_condition.objects if a.name.startswith("landing_")]
    assert {a.name for a in assets} == {f"landing_{s}" for s in sources}
    others = {a.name for a in dag.timetable.asset_condition.objects} - {a.name for a in assets}
    assert others == (set() if dag_id == "ingest_ehr" else {"staged_infusion_sessions"})
    for asset in assets:
        (watcher,) = asset.watchers
        assert isinstance(watcher.trigger, LandingMarkerTrigger)
        assert watcher.trigger.directory.endswith(f"_ready/{asset.name.removeprefix('landing_')}")
    outlets = {o.name for t in dag.tasks for o in t.outlets}
    assert outlets and all(name.startswith("staged_") for name in outlets)


def test_fhir_dag_is_scheduled_on_the_staged_tables_and_produces_the_export(dagbag):
    dag = dagbag.get_dag("fhir_export")
    scheduled_on = {a.name for a in dag.timetable.asset_condition.objects}
    assert scheduled_on == {
        "staged_patients",
        "staged_infusion_sessions",
        "staged_adverse_events",
        "staged_clinics",
        "staged_vital_signs",
        "staged_questionnaire_responses",
        "staged_clinician_ratings",
        "safety_marts",
    }
    outlets = {o.name for t in dag.tasks for o in t.outlets}
    assert outlets == {"fhir_export"}
    assert [t.task_id for t in dag.topological_sort()] == ["export_bulk_ndjson", "deliver_to_fhir_server"]


def test_safety_dag_sends_alerts_before_it_publishes_the_dashboard(dagbag):
    dag = dagbag.get_dag("safety_review")
    scheduled_on = {a.name for a in dag.timetable.asset_condition.objects}
    assert scheduled_on == {f"staged_{t}" for t in STAGED_TABLES_ALL}
    assert [t.task_id for t in dag.topological_sort()] == ["build_marts", "raise_alerts", "publish_dashboard"]
    assert {o.name for t in dag.tasks for o in t.outlets} == {"safety_marts", "safety_dashboard"}


def test_production_event_bus_uses_redis_streams():
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        "b = DagBag(dag_folder='dags')\n"
        "assert b.import_errors == {}, b.import_errors\n"
        "t = b.get_dag('ingest_monitor_vitals').timetable\n"
        "a = t.asset_condition.objects[0]\n"
        "print(type(a.watchers[0].trigger).__name__, a.watchers[0].trigger.shared_stream_key())\n"
    )
    env = {**os.environ, "CLINIC_EVENT_BUS": "redis"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "RedisStreamEventTrigger ('redis-stream', 'clinic_events_redis', 'clinic-pipeline:batches'" in out.stdout


def test_dag_files_do_not_import_heavy_modules_at_parse_time():
    code = (
        "import runpy, sys\n"
        "import glob\n"
        "for f in sorted(glob.glob('dags/*.py')):\n"
        "    runpy.run_path(f)\n"
        "heavy = [m for m in ('pandas', 'great_expectations', 'fhir.resources', 'hl7') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
