"""The EHR ingest reads PostgreSQL (timestamptz) the same way as SQLite, incrementally and idempotently."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import psycopg2
import pytest

from clinic_pipeline.ingest.ehr_source import ingest_ehr
from clinic_pipeline.lake import Lake
from clinic_pipeline.simulator.runner import SimulationOptions, simulate


@pytest.fixture
def postgres_url():
    name = f"clinic_ehr_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", dbname="postgres", user="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"create database {name}")
    yield f"postgresql+psycopg2://postgres@127.0.0.1/{name}"
    admin.cursor().execute(f"drop database if exists {name} with (force)")
    admin.close()


@pytest.mark.postgres
def test_incremental_ehr_ingest_from_postgresql(tmp_path, postgres_url):
    options = SimulationOptions(
        out=tmp_path / "landing", truth_out=tmp_path / "truth.json", clinics=2, days=2, seed=6, ehr_url=postgres_url
    )
    simulate(options)
    lake = Lake(tmp_path / "lake")
    first = ingest_ehr(postgres_url, options.out, lake, now=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    assert first.reconciled and first.rows_staged > 0
    sessions = lake.read_parquets(lake.staged_table("infusion_sessions"))
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert len(sessions) == truth["counts"]["sessions"]
    assert str(sessions["started_at"].dt.tz) == "UTC"
    assert ingest_ehr(postgres_url, options.out, lake, now=dt.datetime(2026, 2, 1, 1, tzinfo=dt.UTC)) is None

    simulate(
        SimulationOptions(
            out=tmp_path / "landing", truth_out=tmp_path / "truth.json", clinics=2, days=3, seed=6, ehr_url=postgres_url
        )
    )  # three more days: new rows and late corrections
    later = ingest_ehr(postgres_url, options.out, lake, now=dt.datetime(2026, 2, 2, tzinfo=dt.UTC))
    truth = json.loads((tmp_path / "truth.json").read_text())
    sessions = lake.read_parquets(lake.staged_table("infusion_sessions"))
    assert later.reconciled and len(sessions) == truth["counts"]["sessions"] and sessions["session_id"].is_unique
    events = lake.read_parquets(lake.staged_table("adverse_events"))
    entered = [e for e in truth["adverse_events"] if e["entered_day"] <= truth["last_day"]]
    assert events["ae_id"].is_unique and len(events) == len(entered)
