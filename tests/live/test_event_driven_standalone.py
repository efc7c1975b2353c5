"""A real Airflow (scheduler, triggerer, dag-processor, api-server: `airflow standalone`) ingests a batch as
soon as its marker lands. The cron sweep is set to 29 February (none between start_date and now), so only
events start runs."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import generate

REPO = Path(__file__).resolve().parents[2]
DAG_IDS = ("ingest_ehr", "ingest_monitor_vitals", "ingest_epro_questionnaires")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(2)
    pytest.fail(f"timed out waiting for {what}; standalone log tail:\n{log.read_text()[-4000:]}")


def test_a_landed_batch_marker_starts_the_ingest_dags(tmp_path):
    home = Path(tempfile.mkdtemp(prefix="clinic-standalone-"))
    data = tmp_path / "data"
    port = _free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__ASSET_TRIGGERED_DAGRUN_CHECK_INTERVAL": "2",
        "CLINIC_DATA": str(data),
        "CLINIC_SWEEP_CRON": "0 0 29 2 *",  # next 29 February is after start_date: no run
        "GX_ANALYTICS_ENABLED": "False",
    }
    (data / "landing" / "_ready").mkdir(parents=True)
    log = tmp_path / "standalone.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    db = home / "airflow.db"
    try:
        _wait(lambda: db.exists() and _dags_registered(db), 240, "the DAGs to be parsed and registered", log)
        time.sleep(10)  # the triggerer picks up the watchers' triggers
        generate(data, clinics=2, days=1, seed=8)
        _wait(lambda: _ingested_by_events(db) >= set(DAG_IDS), 300, "event-triggered runs to ingest", log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    # Monitor and questionnaire batches first wait for the EHR; the EHR run's staged_infusion_sessions event
    # (not the sweep, which never fires here) then wakes those DAGs again.
    assert _ingested_by_events(db) == set(DAG_IDS)
    assert list((data / "lake" / "staged" / "vital_signs").rglob("*.parquet"))
    assert list((data / "lake" / "staged" / "questionnaire_responses").rglob("*.parquet"))


def _dags_registered(db: Path) -> bool:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            rows = conn.execute("select dag_id from dag where is_paused = 0").fetchall()
    except sqlite3.Error:
        return False
    return set(DAG_IDS) <= {r[0] for r in rows}


def _ingested_by_events(db: Path) -> set[str]:
    """DAGs whose ingest task did work (success, not skipped) in a run started by an asset event."""
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            rows = conn.execute(
                "select distinct ti.dag_id from task_instance ti join dag_run r "
                "on r.dag_id = ti.dag_id and r.run_id = ti.run_id "
                "where r.run_type = 'asset_triggered' and ti.state = 'success' and ti.task_id like 'ingest_%'"
            ).fetchall()
    except sqlite3.Error:
        return set()
    return {r[0] for r in rows}
