"""Alert tests: one simulated network through the ingest and the marts, a fresh lake copy per test, and real
local SMTP and webhook servers reached through Airflow connections (AIRFLOW_CONN_* environment variables).

Airflow is imported lazily (inside tests), after AIRFLOW_HOME points at a private folder; an AIRFLOW_HOME set
by another conftest of the same session is kept.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="clinic-airflow-alerts-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from clinic_pipeline.lake import Lake
from tests.alerts.servers import SmtpTestServer, WebhookReceiver
from tests.conftest import generate
from tests.safety.conftest import SafetyBuild, ingest_and_build

SMTP_LOGIN = ("clinic-alerts", "not-a-real-secret")
WEBHOOK_TOKEN = "test-webhook-token-123"


@pytest.fixture(scope="session")
def alerts_build(tmp_path_factory: pytest.TempPathFactory) -> SafetyBuild:
    """6 clinics x 10 days, clean, seed 39: serious AEs, both severe BP rules, PHQ-9 and C-SSRS flags."""
    root = tmp_path_factory.mktemp("alerts_network")
    return ingest_and_build(generate(root, clinics=6, days=10, seed=39), root)


@pytest.fixture(scope="session")
def faulty_alerts_build(tmp_path_factory: pytest.TempPathFactory) -> SafetyBuild:
    """4 clinics x 6 days with every fault kind (partial questionnaires, EHR rows held in quarantine...)."""
    root = tmp_path_factory.mktemp("alerts_faulty")
    return ingest_and_build(generate(root, clinics=4, days=6, seed=5, faults=0.12), root)


def copy_lake(source: Path, target: Path, *, all_staged: bool = False) -> Lake:
    """What the alerts read: the marts, the pseudonym lookup and the staged patients and clinics (or every
    staged table, to rebuild the marts)."""
    for part in ("marts", *(["staged"] if all_staged else ["staged/patients", "staged/clinics"])):
        shutil.copytree(source / part, target / part)
    (target / "state").mkdir(parents=True)
    shutil.copy2(source / "state" / "pseudonyms.parquet", target / "state" / "pseudonyms.parquet")
    return Lake(target)


@pytest.fixture
def lake(alerts_build: SafetyBuild, tmp_path: Path) -> Lake:
    return copy_lake(alerts_build.lake_root, tmp_path / "lake")


@pytest.fixture(scope="session")
def identifiers(alerts_build: SafetyBuild) -> dict[str, set[str]]:
    """Every direct identifier the EHR holds, to look for in the bytes the servers received."""
    with sqlite3.connect(alerts_build.network.ehr_path) as db:
        rows = db.execute(
            "select patient_id, mrn, redcap_record_id, family_name, given_name, birth_date from patients"
        ).fetchall()
        sessions = [r[0] for r in db.execute("select session_id from infusion_sessions")]
    return {
        "patient_id": {r[0] for r in rows},
        "mrn": {r[1] for r in rows},
        "redcap_record_id": {r[2] for r in rows},
        "name": {r[3] for r in rows} | {r[4] for r in rows},
        "birth_date": {str(r[5]) for r in rows},
        "session_id": set(sessions),
    }


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    server = SmtpTestServer(credentials=SMTP_LOGIN)
    yield server
    server.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


def smtp_connection(server: SmtpTestServer, **extra: object) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": server.port,
            "login": SMTP_LOGIN[0],
            "password": SMTP_LOGIN[1],
            "extra": {
                "from": "safety-alerts@network.example",
                "to": ["safety-officer@network.example"],
                "starttls": False,
                "timeout": 5,
                "retry_delay_s": 0,
            }
            | extra,
        }
    )


def webhook_connection(receiver: WebhookReceiver, **extra: object) -> str:
    return json.dumps(
        {
            "conn_type": "http",
            "host": receiver.url,
            "extra": {"token": WEBHOOK_TOKEN, "timeout": 5, "max_attempts": 3, "retry_delay_s": 0} | extra,
        }
    )


@pytest.fixture
def channels(monkeypatch: pytest.MonkeyPatch, smtp: SmtpTestServer, webhook: WebhookReceiver) -> None:
    """Both alert connections defined, pointing at the local servers."""
    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_SMTP", smtp_connection(smtp))
    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_ALERTS_WEBHOOK", webhook_connection(webhook))
