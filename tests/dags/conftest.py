"""Airflow test environment: a private AIRFLOW_HOME on SQLite, migrated once, DAGs from the repository.

The environment is set before anything imports Airflow (this conftest runs before the test modules here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="clinic-airflow-"))
DATA = AIRFLOW_HOME / "data"
os.environ.update(
    AIRFLOW_HOME=str(AIRFLOW_HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
    CLINIC_DATA=str(DATA),
    CLINIC_EVENT_BUS="files",
    GX_ANALYTICS_ENABLED="False",
)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))
