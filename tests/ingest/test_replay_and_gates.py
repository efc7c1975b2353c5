"""Quarantine replay after a fix, and a quality gate that stops a batch and turns the run red."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
import sys

from clinic_pipeline.ingest.ehr_source import ingest_ehr
from clinic_pipeline.ingest.file_sources import ingest_file_source
from clinic_pipeline.ingest.replay import replay_quarantine
from clinic_pipeline.ingest.run import default_ehr_url, run_pipeline
from clinic_pipeline.lake import Lake
from tests.conftest import generate

NOW = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def test_readings_that_arrived_before_their_sessions_are_replayed_into_staging(tmp_path):
    net = generate(tmp_path, clinics=2, days=1, seed=3)
    lake = Lake(tmp_path / "lake")
    early = ingest_file_source("monitor", net.landing, lake)  # the EHR has not been read yet
    assert early and all(r.rows_staged == 0 and r.reconciled for r in early)
    held = lake.read_parquets(lake.path("quarantine", "monitor"))
    assert set(held["rule"]) == {"unknown_session"} and len(held) == net.truth["counts"]["vital_readings"]

    ingest_ehr(default_ehr_url(net.landing), net.landing, lake, now=NOW)
    summary = replay_quarantine(tmp_path / "lake", source="monitor", rule="unknown_session", now=NOW)
    assert summary.replayed == len(held) and summary.staged == len(held) and summary.still_quarantined == 0
    staged = lake.read_parquets(lake.staged_table("vital_signs"))
    assert len(staged) == len(held) and staged["control_id"].is_unique
    assert staged["minutes_from_start"].notna().all()
    for report in early:
        recon = lake.read_json(lake.reconciliation_file("monitor", report.batch_id))
        assert recon["reconciled"] and recon["rows_staged"] == recon["rows_in"] and recon["rows_quarantined"] == 0
    assert replay_quarantine(tmp_path / "lake", now=NOW).replayed == 0, "a second replay has nothing to do"
    assert list(lake.path("quality", "replays").glob("*.json"))


def test_a_batch_over_a_critical_threshold_publishes_nothing_and_the_run_fails(tmp_path):
    net = generate(tmp_path, clinics=1, days=1, seed=4)
    (hl7_file,) = net.landing.glob("monitor/*/*.hl7")
    marker_path = next(net.landing.glob("_ready/monitor/*.json"))
    # A monitor whose SpO2 probe reports 0 on every reading: a broken device, not a patient.
    data = re.sub(
        rb"(\|(?:150456\^MDC_PULS_OXIM_SAT_O2\^MDC\|1\.0\.1\.150456|2708-6\^[^|]*\^LN\|1)\|)\d+",
        rb"\g<1>0",
        hl7_file.read_bytes(),
    )
    hl7_file.write_bytes(data)
    marker = json.loads(marker_path.read_text())
    marker["files"][0].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    marker_path.write_text(json.dumps(marker))
    summary = run_pipeline(net.landing, tmp_path / "lake", data_docs=False)
    (monitor,) = [r for r in summary.reports if r.source == "monitor"]
    assert monitor.status == "gate_failed" and monitor.rows_staged == 0 and monitor.reconciled
    assert "spo2_impossible" in monitor.reason
    assert not summary.ok
    lake = Lake(tmp_path / "lake")
    assert lake.read_parquets(lake.staged_table("vital_signs")).empty
    held = lake.read_parquets(lake.path("quarantine", "monitor"))
    assert (held["rule"] == "batch_gate_failed").all() and len(held) == monitor.rows_in
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "clinic_pipeline.cli",
            "run",
            "--landing",
            str(net.landing),
            "--lake",
            str(tmp_path / "lake2"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 1 and "gate_failed" in cli.stdout
