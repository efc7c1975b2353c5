"""Complete-batch announcements: marker files (always) and Redis Stream entries (when asked)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid

import pytest
import redis

from tests.conftest import generate
from tests.simulator.landing_reader import markers

CLI = [sys.executable, "-m", "clinic_pipeline.cli"]


def test_every_data_file_has_a_marker_whose_manifest_matches(small_network):
    announced = {}
    for marker in markers(small_network.landing):
        for entry in marker["files"]:
            data = (small_network.landing / entry["path"]).read_bytes()
            assert len(data) == entry["bytes"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            announced[entry["path"]] = marker["batch_id"]
    data_files = {
        p.relative_to(small_network.landing).as_posix()
        for p in small_network.landing.rglob("*.*")
        if p.suffix in (".hl7", ".ndjson", ".csv")
    }
    assert data_files == set(announced)
    assert not list(small_network.landing.rglob(".*.partial")), "no half-written file is left behind"
    ehr = [m for m in markers(small_network.landing) if m["source"] == "ehr"]
    assert len(ehr) == 6 and all(m["files"] == [] and m["tables"]["infusion_sessions"] >= 0 for m in ehr)


def test_ground_truth_lists_every_batch_with_its_marker(small_network):
    truth_batches = {b["batch_id"]: b for b in small_network.truth["batches"]}
    on_disk = {m["batch_id"]: m for m in markers(small_network.landing)}
    assert truth_batches.keys() == on_disk.keys()
    for batch_id, batch in truth_batches.items():
        assert batch["records"] == on_disk[batch_id].get("records", batch["records"])


@pytest.mark.redis
def test_batches_are_announced_on_a_redis_stream(tmp_path):
    stream = f"clinic-pipeline:test:{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        net = generate(tmp_path, clinics=2, days=2, seed=1, redis_url="redis://127.0.0.1:6379/0", redis_stream=stream)
        entries = client.xrange(stream)
        on_disk = {m["batch_id"] for m in markers(net.landing)}
        assert len(entries) == len(on_disk)
        assert {e[1][b"batch_id"].decode() for e in entries} == on_disk
        for _, fields in entries:
            assert (net.landing / fields[b"marker"].decode()).exists()
    finally:
        client.delete(stream)


def test_truth_file_inside_the_landing_zone_is_refused(tmp_path):
    out = tmp_path / "landing"
    result = subprocess.run(
        [*CLI, "simulate", "--out", str(out), "--truth-out", str(out / "truth.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "outside the landing zone" in result.stderr


def test_continuous_mode_keeps_producing_days_until_stopped(tmp_path):
    out = tmp_path / "landing"
    proc = subprocess.Popen(
        [
            *CLI,
            "simulate",
            "--out",
            str(out),
            "--clinics",
            "2",
            "--continuous",
            "--interval",
            "0.2",
            "--truth-out",
            str(tmp_path / "truth.json"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    state = out / ".simulator-state.json"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if state.exists() and json.loads(state.read_text())["next_day"] >= 3:
                break
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    next_day = json.loads(state.read_text())["next_day"]
    assert next_day >= 3
    ehr_days = {m["service_date"] for m in markers(out) if m["source"] == "ehr"}
    assert len(ehr_days) >= next_day
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["last_day"] >= next_day - 1
