"""Where the pipeline reads and writes, from the environment (set in docker-compose or by `make demo`).

    CLINIC_LANDING      landing zone folder the clinic systems write into
    CLINIC_LAKE         lake root (folder or fsspec URL)
    CLINIC_EVENT_BUS    "files" (default: marker files) or "redis" (Redis Streams, connection clinic_events_redis)
    CLINIC_EVENT_STREAM Redis Stream the clinic systems announce batches on (default clinic-pipeline:batches)
    CLINIC_SWEEP_CRON   time-based sweep next to the events (default every 5 minutes)
The EHR database is the Airflow connection `clinic_ehr` when defined, else CLINIC_EHR_URL, else the
SQLite file in the landing zone (the embedded default).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = Path(os.environ.get("CLINIC_DATA", Path.cwd() / "data"))


def landing_dir() -> Path:
    return Path(os.environ.get("CLINIC_LANDING", DEFAULT_ROOT / "landing"))


def lake_root() -> str:
    return os.environ.get("CLINIC_LAKE", str(DEFAULT_ROOT / "lake"))


def event_bus() -> str:
    return os.environ.get("CLINIC_EVENT_BUS", "files")


def event_stream() -> str:
    return os.environ.get("CLINIC_EVENT_STREAM", "clinic-pipeline:batches")


def sweep_cron() -> str:
    return os.environ.get("CLINIC_SWEEP_CRON", "*/5 * * * *")


def ehr_url() -> str:
    """Resolved at task run time only (a connection lookup does not belong in DAG parsing)."""
    try:
        from airflow.sdk import BaseHook

        uri = BaseHook.get_connection("clinic_ehr").get_uri()
        # Airflow spells a postgres connection "postgres://", which SQLAlchemy refuses.
        return "postgresql+psycopg2://" + uri.removeprefix("postgres://") if uri.startswith("postgres://") else uri
    except Exception:  # no such connection: fall back to the environment, then to the embedded default
        return os.environ.get("CLINIC_EHR_URL", f"sqlite:///{(landing_dir() / 'ehr.sqlite').resolve()}")
