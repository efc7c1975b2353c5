"""Every injected fault is really in the emitted data, exactly where the ground truth says it is."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from clinic_pipeline.simulator.faults import EXPECTED_OUTCOME
from tests.conftest import GeneratedNetwork, config_with_batch_faults, generate
from tests.simulator.landing_reader import split_hl7_batch


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> GeneratedNetwork:
    """A fault rate high enough, and batch-level faults frequent enough, that every kind occurs."""
    root = tmp_path_factory.mktemp("faults")
    return generate(root, clinics=4, days=6, seed=5, faults=0.25, config_path=config_with_batch_faults(root, 0.3))


@pytest.fixture(scope="module")
def faults_by_kind(network) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for fault in network.truth["faults"]:
        grouped.setdefault(f"{fault['source']}.{fault['kind']}", []).append(fault)
    return grouped


@pytest.fixture(scope="module")
def damaged_files(faults_by_kind) -> set[str]:
    return {f["file"] for k in ("batch.truncated_file", "batch.undecodable_file") for f in faults_by_kind.get(k, [])}


def test_every_fault_kind_is_injected_and_recorded(faults_by_kind):
    assert set(faults_by_kind) == {f"{s}.{k}" for s, k in EXPECTED_OUTCOME}
    for kind, faults in faults_by_kind.items():
        assert all(f["expected"] == EXPECTED_OUTCOME[tuple(kind.split("."))] for f in faults)


def test_no_fault_when_the_rate_is_zero(small_network):
    assert small_network.truth["faults"] == []


def _message(network: GeneratedNetwork, fault: dict) -> list[bytes]:
    data = (network.landing / fault["file"]).read_bytes()
    found = [
        m for m in split_hl7_batch(data) if m.split(b"\r")[0].split(b"|")[9].decode() == fault["location"]["control_id"]
    ]
    assert found, fault
    return found


def test_monitor_faults_are_where_the_truth_says(network, faults_by_kind, damaged_files):
    sessions = {r[0] for r in sqlite3.connect(network.ehr_path).execute("select session_id from infusion_sessions")}
    checked = 0
    for kind, faults in faults_by_kind.items():
        if not kind.startswith("monitor."):
            continue
        for fault in faults:
            if fault["file"] in damaged_files:
                continue
            messages, loc = _message(network, fault), fault["location"]
            segments = messages[0].split(b"\r")
            pv1 = segments[2].split(b"|")
            obx = [s for s in segments if s.startswith(b"OBX|")]
            match fault["kind"]:
                case "malformed_segment":
                    assert any(s[3:4] != b"|" for s in segments[1:])
                case "bad_escape":
                    assert any(s.split(b"|")[5].endswith(b"\\X0") for s in obx)
                case "wrong_unit_kpa":
                    assert sum(b"KILO_PASCAL" in s or b"kPa" in s for s in obx) == 3
                case "wrong_unit_degf":
                    assert any((b"FAHR" in s or b"[degF]" in s) and float(s.split(b"|")[5]) > 90 for s in obx)
                case "impossible_value":
                    assert loc["value"].encode() in [s.split(b"|")[5] for s in obx]
                case "duplicate_message":
                    assert len(messages) == 2 and messages[0] == messages[1]
                case "out_of_order":
                    assert loc["swapped_with"]
                case "unknown_session":
                    assert pv1[19].split(b"^")[0].decode() not in sessions
                case "missing_required":
                    assert (pv1[19] == b"") if loc["field"] == "PV1-19" else any(s.split(b"|")[5] == b"" for s in obx)
                case "bad_encoding":
                    with pytest.raises(UnicodeDecodeError):
                        messages[0].decode("utf-8")
            checked += 1
    assert checked > 50


def test_epro_and_redcap_faults_are_where_the_truth_says(network, faults_by_kind, damaged_files):
    mrns = {r[0] for r in sqlite3.connect(network.ehr_path).execute("select mrn from patients")}
    for fault in faults_by_kind["epro.bad_encoding"]:
        if fault["file"] not in damaged_files:
            line = (network.landing / fault["file"]).read_bytes().split(b"\n")[fault["location"]["line"] - 1]
            with pytest.raises(UnicodeDecodeError):
                line.decode("utf-8")
    for kind in (
        "epro.missing_required",
        "epro.unknown_patient",
        "epro.impossible_value",
        "epro.partial_questionnaire",
    ):
        for fault in faults_by_kind[kind]:
            if fault["file"] in damaged_files:
                continue
            raw = (network.landing / fault["file"]).read_bytes().split(b"\n")[fault["location"]["line"] - 1]
            resource = json.loads(raw)
            assert resource["id"] == fault["location"]["questionnaire_id"]
            if kind == "epro.missing_required":
                assert fault["location"]["field"] not in resource
            elif kind == "epro.unknown_patient":
                assert resource["subject"]["identifier"]["value"] not in mrns
            elif kind == "epro.impossible_value":
                assert "LA9999-9" in raw.decode()
            else:
                assert resource["status"] == "in-progress"
                assert sum("answer" not in i for i in resource["item"]) == len(fault["location"]["unanswered"])
    for kind in ("redcap.partial_questionnaire", "redcap.impossible_value", "redcap.unknown_session"):
        for fault in faults_by_kind[kind]:
            if fault["file"] in damaged_files:
                continue
            lines = (network.landing / fault["file"]).read_text().splitlines()
            header, row = lines[0].split(","), lines[fault["location"]["line"] - 1].split(",")
            record = dict(zip(header, row, strict=True))
            if kind == "redcap.partial_questionnaire":
                assert all(record[f] == "" for f in fault["location"]["blank_fields"])
                assert record[f"{fault['location']['instrument']}_complete"] == "0"
            elif kind == "redcap.impossible_value":
                assert record[fault["location"]["field"]] in ("7", "9")
            else:
                assert record["session_id"] != fault["location"]["session_id"]


def test_ehr_faults_are_in_the_database(network, faults_by_kind):
    db = sqlite3.connect(network.ehr_path)
    keys = {"patients": "patient_id", "infusion_sessions": "session_id", "adverse_events": "ae_id"}
    sessions = {r[0] for r in db.execute("select session_id from infusion_sessions")}
    for kind in (
        "ehr.wrong_unit_lb",
        "ehr.impossible_value",
        "ehr.missing_required",
        "ehr.unknown_reference",
    ):
        for fault in faults_by_kind[kind]:
            loc = fault["location"]
            row = db.execute(f"select * from {loc['table']} where {keys[loc['table']]} = ?", (loc["key"],))
            record = dict(zip([c[0] for c in row.description], row.fetchone(), strict=True))
            if kind == "ehr.wrong_unit_lb":
                assert record["weight_unit"] == "lb"
            elif kind == "ehr.impossible_value":
                assert record[loc["column"]] == loc["value"]
            elif kind == "ehr.missing_required":
                assert record[loc["column"]] is None
            else:
                assert record["session_id"] not in sessions


def test_batch_faults_damage_exactly_the_named_files(network, faults_by_kind):
    markers = {m.stem: json.loads(m.read_text()) for m in (network.landing / "_ready").rglob("*.json")}
    for fault in faults_by_kind["batch.truncated_file"]:
        data = (network.landing / fault["file"]).read_bytes()
        (entry,) = markers[fault["batch_id"]]["files"]
        assert len(data) < entry["bytes"] and hashlib.sha256(data).hexdigest() != entry["sha256"]
    for fault in faults_by_kind["batch.undecodable_file"]:
        with pytest.raises(UnicodeDecodeError):
            (network.landing / fault["file"]).read_bytes().decode("utf-8")
    for fault in faults_by_kind["batch.duplicate_batch"]:
        original = (network.landing / fault["file"]).read_bytes()
        resend = Path(fault["file"].replace(fault["batch_id"], fault["batch_id"] + "-resend1"))
        assert (network.landing / resend).read_bytes() == original
