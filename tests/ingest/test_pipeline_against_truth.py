"""The in-process ingest over a faulty simulated network, checked against the simulator's ground truth:
every injected fault ends where it should, every clean row is staged, every batch reconciles, reruns and
re-deliveries change nothing, and no PHI reaches the logs."""

from __future__ import annotations

import hashlib
import io
import logging
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from clinic_pipeline.ingest.run import run_pipeline
from clinic_pipeline.lake import Lake
from tests.conftest import GeneratedNetwork, config_with_batch_faults, generate

EXPECTED_RULES = {
    "monitor.malformed_segment": {"hl7_malformed_segment"},
    "monitor.bad_escape": {"hl7_bad_escape"},
    "monitor.impossible_value": {"sbp_impossible", "dbp_impossible", "hr_impossible", "spo2_impossible"},
    "monitor.unknown_session": {"unknown_session"},
    "monitor.missing_required": {"missing_required"},
    "monitor.bad_encoding": {"hl7_encoding"},
    "epro.missing_required": {"missing_required"},
    "epro.unknown_patient": {"unknown_patient"},
    "epro.bad_encoding": {"encoding"},
    "epro.impossible_value": {"invalid_answer"},
    "redcap.impossible_value": {"item_out_of_range"},
    "redcap.unknown_session": {"unknown_session"},
    "ehr.impossible_value": {"dose_impossible", "grade_range", "weight_impossible"},
    "ehr.missing_required": {"start_present", "term_present", "weight_present"},
    "ehr.unknown_reference": {"unknown_session"},
}


class Run:
    def __init__(self, network: GeneratedNetwork, lake: Path, summary, log_text: str) -> None:
        self.network, self.lake_root, self.summary, self.log_text = network, lake, summary, log_text
        self.lake = Lake(lake)
        self.truth = network.truth
        self.quarantine = self.lake.read_parquets(self.lake.path("quarantine"))
        self.reports = {r.batch_id: r for r in summary.reports}

    def staged(self, table: str) -> pd.DataFrame:
        return self.lake.read_parquets(self.lake.staged_table(table))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("ingest")
    network = generate(root, clinics=4, days=5, seed=12, faults=0.04, config_path=config_with_batch_faults(root, 0.12))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        summary = run_pipeline(network.landing, root / "lake")
    finally:
        logging.getLogger().removeHandler(handler)
    return Run(network, root / "lake", summary, stream.getvalue())


def damaged_batches(run: Run) -> set[str]:
    return {f["batch_id"] for f in run.truth["faults"] if f["expected"] == "quarantine_file"}


def test_every_batch_reconciles_and_no_gate_stops_this_network(run):
    assert run.summary.reports
    assert run.summary.unreconciled == []
    assert run.summary.gate_failures == []
    assert run.summary.reconciliation_path.exists()
    announced = {b["batch_id"] for b in run.truth["batches"] if b["source"] != "ehr"}
    assert announced <= set(run.reports), "every announced file batch was processed"


def test_faults_that_must_be_quarantined_are_quarantined_with_the_right_rule(run):
    damaged = damaged_batches(run)
    quarantined = defaultdict(set)
    for rec in run.quarantine.itertuples():
        quarantined[(rec.batch_id, rec.row_key)].add(rec.rule)
    checked = 0
    for fault in run.truth["faults"]:
        kind = f"{fault['source']}.{fault['kind']}"
        if kind not in EXPECTED_RULES or fault["batch_id"] in damaged:
            continue
        loc = fault["location"]
        if fault["source"] == "monitor":
            rules = quarantined[(fault["batch_id"], loc["control_id"])]
        elif fault["source"] == "epro":
            rules = (
                quarantined[(fault["batch_id"], loc["questionnaire_id"])]
                | quarantined[(fault["batch_id"], f"{fault['batch_id']}:{loc['line']}")]
            )
        elif fault["source"] == "redcap":
            rules = {
                rule
                for (b, key), r in quarantined.items()
                for rule in r
                if b == fault["batch_id"]
                and (key.endswith(f":line{loc['line']}") or key.startswith(f"{loc.get('value')}:"))
            }
        else:
            rules = {rule for (b, key), r in quarantined.items() for rule in r if key == f"{loc['table']}:{loc['key']}"}
        assert rules & EXPECTED_RULES[kind], (kind, loc, rules)
        checked += 1
    assert checked > 30


def test_no_clean_row_is_quarantined(run):
    """Every quarantined row is explained by a fault the simulator injected (or a duplicate it re-sent)."""
    faulted_keys = set()
    for fault in run.truth["faults"]:
        loc = fault["location"]
        faulted_keys |= {
            str(v)
            for v in (
                loc.get("control_id"),
                loc.get("questionnaire_id"),
                loc.get("value"),
                loc.get("key"),
                fault["batch_id"],
            )
            if v
        }
    for rec in run.quarantine.itertuples():
        if rec.source == "ehr":
            assert rec.row_key.partition(":")[2] in faulted_keys, rec
        elif rec.source == "redcap":
            assert rec.batch_id in faulted_keys and any(
                rec.row_key.startswith(k) or k in rec.raw_record for k in faulted_keys
            ), rec
        elif rec.rule == "duplicate_message":
            assert rec.row_key.split("#")[0] in faulted_keys
        else:
            assert rec.row_key.split(":")[0] in faulted_keys or rec.row_key in faulted_keys, rec


def test_every_clean_reading_is_staged_once(run):
    damaged = damaged_batches(run)
    readings_by_batch = defaultdict(int)
    for session in run.truth["sessions"]:
        date = pd.Timestamp(run.truth["generator"]["start_date"]) + pd.Timedelta(days=session["day"])
        readings_by_batch[f"monitor-{session['clinic_id']}-{date:%Y%m%d}"] += session["readings"]
    lost = defaultdict(int)
    for fault in run.truth["faults"]:
        if fault["source"] == "monitor" and fault["expected"] == "quarantine_row":
            lost[fault["batch_id"]] += 1
    staged = run.staged("vital_signs")
    assert staged["control_id"].is_unique
    per_batch = staged.groupby("batch_id").size().to_dict()
    for batch_id, expected in readings_by_batch.items():
        if batch_id in damaged:
            assert per_batch.get(batch_id, 0) == 0
            continue
        assert per_batch.get(batch_id, 0) == expected - lost[batch_id], batch_id


def test_unit_conversions_are_applied_and_counted(run):
    staged = run.staged("vital_signs").set_index("control_id")
    damaged = damaged_batches(run)
    kpa = [f for f in run.truth["faults"] if f["kind"] == "wrong_unit_kpa" and f["batch_id"] not in damaged]
    degf = [f for f in run.truth["faults"] if f["kind"] == "wrong_unit_degf" and f["batch_id"] not in damaged]
    assert kpa and degf
    for fault in kpa:
        row = staged.loc[fault["location"]["control_id"]]
        assert "sbp:" in row["converted_units"] and "->mm[Hg]" in row["converted_units"]
        assert 60 <= row["sbp_mmhg"] <= 250  # back in mmHg, not 17 (kPa)
    for fault in degf:
        row = staged.loc[fault["location"]["control_id"]]
        assert "temp:" in row["converted_units"] and 35 <= row["temp_c"] <= 38.5
    logged = sum(r.conversions.get("weight:LOCAL:lb->kg", 0) for r in run.summary.reports)
    assert logged == sum(f["kind"] == "wrong_unit_lb" for f in run.truth["faults"])
    assert "unit conversions" in run.log_text


def test_partial_questionnaires_are_staged_without_a_total(run):
    responses = run.staged("questionnaire_responses").set_index("questionnaire_id")
    damaged = damaged_batches(run)
    partial = [
        f
        for f in run.truth["faults"]
        if f["kind"] == "partial_questionnaire" and f["source"] == "epro" and f["batch_id"] not in damaged
    ]
    assert partial
    for fault in partial:
        row = responses.loc[fault["location"]["questionnaire_id"]]
        assert not row["is_complete"]
        assert pd.isna(row["total_score"])


def test_every_suicidality_answer_survives(run):
    """PHQ-9 item 9 >= 1 and C-SSRS high risk: each flag of the truth is staged, or its form was faulted."""
    responses = run.staged("questionnaire_responses").set_index("questionnaire_id")
    faulted = {f["location"].get("questionnaire_id") for f in run.truth["faults"]} | damaged_batches(run)
    damaged_forms = set()
    for f in run.truth["faults"]:
        if f["expected"] == "quarantine_file" and f["source"] == "batch" and f["batch_id"].startswith("epro"):
            damaged_forms.add(f["batch_id"])
    flags = [f for f in run.truth["suicidality_flags"]]
    assert flags
    found = 0
    for flag in flags:
        if flag["questionnaire_id"] in responses.index:
            assert responses.loc[flag["questionnaire_id"], "suicidality_flag"]
            found += 1
        else:
            held = run.quarantine[run.quarantine["row_key"] == flag["questionnaire_id"]]
            assert flag["questionnaire_id"] in faulted or not held.empty or damaged_forms, flag
    assert found > 0.8 * len(flags)


def test_duplicate_batches_and_damaged_files(run):
    for batch in run.truth["batches"]:
        if "duplicate_of" in batch:
            assert run.reports[batch["batch_id"]].status == "duplicate"
            assert run.reports[batch["batch_id"]].rows_staged == 0
    for fault in run.truth["faults"]:
        if fault["expected"] == "quarantine_file":
            report = run.reports[fault["batch_id"]]
            assert report.status == "file_quarantined", report
            held = run.quarantine[run.quarantine["batch_id"] == fault["batch_id"]]
            assert len(held) == 1 and held["row_count"].iloc[0] == report.rows_in


def tree_hash(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.parquet"))
    }


def test_a_rerun_changes_nothing(run):
    before = tree_hash(run.lake_root / "staged") | tree_hash(run.lake_root / "quarantine")
    again = run_pipeline(run.network.landing, run.lake_root, data_docs=False)
    assert again.reports == []
    assert tree_hash(run.lake_root / "staged") | tree_hash(run.lake_root / "quarantine") == before


def test_no_phi_in_logs(run):
    db = sqlite3.connect(run.network.ehr_path)
    names = {n for row in db.execute("select family_name, given_name from patients") for n in row}
    mrns = {r[0] for r in db.execute("select mrn from patients")}
    assert run.log_text
    leaked = [x for x in names | mrns if x in run.log_text]
    assert leaked == []
    staged_patients = run.staged("patients")
    assert not {"family_name", "given_name"} & set(staged_patients.columns)


def test_cli_run_prints_the_table_and_exits_zero(run, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "clinic_pipeline.cli",
            "run",
            "--landing",
            str(run.network.landing),
            "--lake",
            str(tmp_path / "lake"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "rows in" in result.stdout and "monitor" in result.stdout
    assert (tmp_path / "lake" / "quality" / "reconciliation.json").exists()
