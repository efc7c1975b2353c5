"""Plugin tests: Airflow's real API app (`create_app`) with the repository's plugins folder, on a private
SQLite metadata DB, over a temporary lake holding a small fake dashboard site.

Airflow is imported lazily; an AIRFLOW_HOME set by another conftest of the same session is kept, and the
plugins folder is pointed at `<repo>/plugins` in-process (Airflow's settings may already be loaded).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="clinic-airflow-plugins-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PLUGINS))

SECRET = b"SECRET-PSEUDONYM-LOOKUP"


def write_site(lake: Path) -> Path:
    """A published site plus things that must never be served: a sibling run, the state zone, temp files."""
    site = lake / "dashboards" / "latest"
    (site / "data").mkdir(parents=True)
    (site / "views").mkdir()
    (site / "index.html").write_text("<!doctype html><title>x</title>SAFETY-DASHBOARD-INDEX <a href='data/ae.csv'>")
    (site / "data" / "ae.csv").write_text("term,patients\nnausea,<11\n")
    (site / "app.js").write_text("console.log('dashboard');\n")
    (site / "views" / "index.html").write_text("VIEWS-INDEX")
    (site / ".index.html.0a1b.tmp").write_text("PARTIAL-WRITE")
    (lake / "dashboards" / "2026-01-01T000000").mkdir()
    (lake / "dashboards" / "2026-01-01T000000" / "index.html").write_text("OLD-RUN")
    (lake / "state").mkdir()
    (lake / "state" / "pseudonyms.parquet").write_bytes(SECRET)
    (site / "escape").symlink_to(lake / "state", target_is_directory=True)
    (site / "link.csv").symlink_to(lake / "state" / "pseudonyms.parquet")
    return site


@pytest.fixture(scope="session")
def site_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("plugin_lake")
    write_site(lake)
    return lake


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the metadata DB this process uses (token revocation is checked there)."""
    from airflow.configuration import conf

    env = os.environ | {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conf.get("database", "sql_alchemy_conn")}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=env)


def _clear_plugin_caches() -> None:
    from airflow import plugins_manager

    for value in vars(plugins_manager).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


@pytest.fixture(scope="session")
def plugins_loaded() -> Iterator[None]:
    """Airflow's plugin manager reading the repository's plugins folder (restored afterwards)."""
    from airflow import settings

    previous = settings.PLUGINS_FOLDER
    settings.PLUGINS_FOLDER = str(PLUGINS)
    _clear_plugin_caches()
    yield
    settings.PLUGINS_FOLDER = previous
    _clear_plugin_caches()


@pytest.fixture(scope="session")
def api_app(airflow_db, plugins_loaded, site_lake) -> Iterator[object]:
    """The api-server's FastAPI app ("core": plugins, auth manager, UI routes), as `airflow api-server` builds it."""
    from airflow.api_fastapi.app import create_app

    previous = os.environ.get("CLINIC_LAKE")
    os.environ["CLINIC_LAKE"] = str(site_lake)
    yield create_app(apps="core")
    if previous is None:
        os.environ.pop("CLINIC_LAKE", None)
    else:
        os.environ["CLINIC_LAKE"] = previous


@pytest.fixture
def client(api_app):
    from fastapi.testclient import TestClient

    with TestClient(api_app) as test_client:
        yield test_client
