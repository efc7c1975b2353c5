"""A real Airflow (scheduler, triggerer, dag-processor, api-server: `airflow standalone`) ingests a batch as
soon as its marker lands (the embedded default's event bus: marker files). The cron sweep is set to 29 February
(none between start_date and now), so only events start runs."""

from __future__ import annotations

import time

import pytest

from clinic_pipeline.standalone import INGEST_DAG_IDS, LocalAirflow, query_db
from tests.conftest import generate

pytestmark = pytest.mark.slow


def _wait(predicate, timeout: float, what: str, airflow: LocalAirflow) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(2)
    pytest.fail(f"timed out waiting for {what}; standalone log tail:\n{airflow.log_tail(4000)}")


def test_a_landed_batch_marker_starts_the_ingest_dags(tmp_path, start_airflow):
    data = tmp_path / "data"
    airflow = start_airflow(data)
    airflow.wait_ready(dag_ids=INGEST_DAG_IDS, timeout=240)
    generate(data, clinics=2, days=1, seed=8)
    _wait(lambda: _ingested_by_events(airflow) >= set(INGEST_DAG_IDS), 300, "event-triggered runs to ingest", airflow)
    assert airflow.stop() == []  # nothing it started is left running
    # Monitor and questionnaire batches first wait for the EHR; the EHR run's staged_infusion_sessions event
    # (not the sweep, which never fires here) then wakes those DAGs again.
    assert _ingested_by_events(airflow) == set(INGEST_DAG_IDS)
    assert list((data / "lake" / "staged" / "vital_signs").rglob("*.parquet"))
    assert list((data / "lake" / "staged" / "questionnaire_responses").rglob("*.parquet"))


def _ingested_by_events(airflow: LocalAirflow) -> set[str]:
    """DAGs whose ingest task did work (success, not skipped) in a run started by an asset event."""
    rows = query_db(
        airflow.db,
        "select distinct ti.dag_id from task_instance ti join dag_run r "
        "on r.dag_id = ti.dag_id and r.run_id = ti.run_id "
        "where r.run_type = 'asset_triggered' and ti.state = 'success' and ti.task_id like 'ingest_%'",
    )
    return {r[0] for r in rows}
