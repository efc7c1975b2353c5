"""The marts as files: deterministic reruns, no PHI in the publication marts, a truthful manifest, and a lake
with nothing (or only part) staged still gives every mart."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from clinic_pipeline.lake import Lake
from clinic_pipeline.safety.marts import MART_DOCS, PUBLICATION, build_marts
from clinic_pipeline.safety.staged_tables import AS_OF_COLUMNS

# Identifier and free-text columns that must never reach a publication mart (HIPAA Safe Harbor, DOMAIN.md).
FORBIDDEN_COLUMNS = {
    "patient_id",
    "session_id",
    "mrn",
    "mrn_system",
    "birth_date",
    "family_name",
    "given_name",
    "name",
    "ae_id",
    "ae_key",
    "questionnaire_id",
    "control_id",
    "record_id",
    "redcap_record_id",
    "matched_staff_ae_id",
    "raw_record",
    "reason",
    "answers_json",
    "items_json",
    "enrolled_on",
    "started_at",
    "observed_at",
    "authored_at",
    "rated_at",
    "onset_at",
    "resolved_at",
    "discharged_at",
    "updated_at",
}


def file_hashes(lake_root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((lake_root / "marts").iterdir())}


def test_a_rebuild_over_the_same_staged_data_writes_the_same_bytes(clean_build):
    before = file_hashes(clean_build.lake_root)
    pseudonyms = (clean_build.lake_root / "state" / "pseudonyms.parquet").read_bytes()
    again = build_marts(clean_build.lake)
    assert again.tokens_added == 0 and clean_build.summary.tokens_added > 0
    assert file_hashes(clean_build.lake_root) == before
    assert (clean_build.lake_root / "state" / "pseudonyms.parquet").read_bytes() == pseudonyms
    assert set(before) == {f"{name}.parquet" for name in MART_DOCS} | {"_manifest.json"}


def identifiers(build) -> tuple[set[str], set[str]]:
    """(names, ids): every name of the simulated EHR (matched as whole values) and every patient id, MRN,
    session id and adverse-event id (matched anywhere inside a value)."""
    db = sqlite3.connect(build.network.ehr_path)
    names = {str(v) for row in db.execute("select family_name, given_name from patients") for v in row}
    ids = {str(v) for row in db.execute("select patient_id, mrn from patients") for v in row}
    ids |= {str(r[0]) for r in db.execute("select session_id from infusion_sessions")}
    ids |= {str(r[0]) for r in db.execute("select ae_id from adverse_events")}
    return names, ids


@pytest.fixture(scope="module")
def ehr_identifiers(clean_build) -> tuple[set[str], set[str]]:
    return identifiers(clean_build)


@pytest.mark.parametrize("name", sorted(n for n, (audience, _) in MART_DOCS.items() if audience == PUBLICATION))
def test_publication_marts_hold_no_identifier_date_or_free_text(clean_build, ehr_identifiers, name):
    mart = clean_build.mart(name)
    assert not FORBIDDEN_COLUMNS & set(mart.columns), name
    assert not [c for c, t in mart.dtypes.items() if "datetime" in str(t)], name
    text = mart.select_dtypes(exclude="number")
    values = {str(v) for column in text.columns for v in text[column].dropna().unique()}
    names, ids = ehr_identifiers
    leaked = (values & names) | {v for v in values for ident in ids if ident in v}
    assert leaked == set(), (name, sorted(leaked)[:5])


def test_listings_use_random_tokens_and_relative_days(clean_build):
    lookup = pd.read_parquet(clean_build.lake_root / "state" / "pseudonyms.parquet")
    db = sqlite3.connect(clean_build.network.ehr_path)
    mrns = dict(db.execute("select patient_id, mrn from patients").fetchall())
    for listing in ("serious_event_listing", "suicidality_listing"):
        mart = clean_build.mart(listing)
        assert len(mart) > 0 and mart["patient_token"].isin(set(lookup["patient_token"])).all()
        assert (mart["course_day"] >= 0).all() and (mart["course_day"] < 400).all()
    for patient_id, token in zip(lookup["patient_id"], lookup["patient_token"], strict=True):
        mrn = mrns[patient_id]
        # Not derived from the MRN: no MRN digits run, no hash of it.
        assert mrn not in token and hashlib.sha256(mrn.encode()).hexdigest()[:8].upper() not in token
    assert lookup["patient_token"].is_unique


def test_manifest_names_every_mart_with_its_shape_and_the_as_of_time(clean_build):
    manifest = json.loads((clean_build.lake_root / "marts" / "_manifest.json").read_text())
    assert [m["name"] for m in manifest["marts"]] == list(MART_DOCS)
    for entry in manifest["marts"]:
        mart = clean_build.mart(entry["name"])
        assert entry["rows"] == len(mart) and [c["name"] for c in entry["columns"]] == list(mart.columns)
        assert entry["audience"] == MART_DOCS[entry["name"]][0]
    newest = max(clean_build.staged(t)[c].max() for t, c in AS_OF_COLUMNS.items())
    assert pd.Timestamp(manifest["as_of"]) == newest
    assert manifest["rules_digest"] and manifest["data_quality"]["rows_quarantined_by_source"] == {}
    assert manifest["data_quality"]["batches_stopped_by_gate"] == 0


def test_an_empty_or_partial_lake_still_gives_every_mart(clean_build, tmp_path):
    empty = build_marts(Lake(tmp_path / "empty"))
    assert set(empty.rows) == set(MART_DOCS) and empty.as_of is None
    assert sum(empty.rows.values()) == empty.rows["rule_thresholds"] > 0
    # Only the EHR's patients and clinics staged (a run stopped before the sessions): same columns as a full build.
    partial = tmp_path / "partial"
    for table in ("patients", "clinics"):
        source = clean_build.lake_root / "staged" / table
        for path in source.rglob("*.parquet"):
            target = partial / "staged" / table / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    build_marts(Lake(partial))
    for name in MART_DOCS:
        assert list(pd.read_parquet(partial / "marts" / f"{name}.parquet").columns) == list(
            clean_build.mart(name).columns
        ), name
