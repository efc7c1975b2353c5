"""Live tests: a real `airflow standalone` (scheduler, dag-processor, triggerer, api-server) on SQLite.

`start_airflow(data, **env)` starts one with the repo's dags/ and plugins/, an AIRFLOW_HOME under the test's tmp
dir, a free api-server port, the DAGs unpaused and the cron sweep disabled (only events start runs); it is
stopped (the whole process group) at the end of the test, also on failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clinic_pipeline.standalone import LocalAirflow, free_port


@pytest.fixture
def start_airflow(tmp_path: Path) -> Iterator[Callable[..., LocalAirflow]]:
    started: list[LocalAirflow] = []

    def start(data: Path, **extra_env: str) -> LocalAirflow:
        airflow = LocalAirflow(tmp_path / "airflow-home", data, free_port(), extra_env=extra_env)
        started.append(airflow)
        airflow.start()
        return airflow

    yield start
    for airflow in started:
        airflow.stop()
