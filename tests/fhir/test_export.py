"""The Bulk Data export of simulated networks: counts against the ground truth, validity (our validator and the
official R4 JSON schema), references, rejections, reruns and the validate-fhir CLI."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import jsonschema
import orjson
import pandas as pd
import pytest

from clinic_pipeline.cli import main
from clinic_pipeline.fhir.export import export_fhir
from fhir_mappings.validation import references, validate_files

SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "fhir-r4.schema.json.gz"
VITAL_LOINC = {"85354-9", "8867-4", "2708-6", "9279-1", "8310-5"}


def read_export(root: Path) -> dict[str, list[dict]]:
    export = root / "fhir" / "export"
    return {p.stem: [orjson.loads(line) for line in p.read_bytes().splitlines()] for p in export.glob("*.ndjson")}


def digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "fhir" / "export").glob("*"))}


@pytest.fixture(scope="module")
def clean_export(clean_ingested):
    summary = export_fhir(clean_ingested.lake)
    return clean_ingested, summary, read_export(clean_ingested.root)


@pytest.fixture(scope="module")
def faulty_export(faulty_ingested):
    summary = export_fhir(faulty_ingested.lake)
    return faulty_ingested, summary, read_export(faulty_ingested.root)


def test_counts_match_the_ground_truth_of_a_clean_network(clean_export):
    ingested, summary, resources = clean_export
    truth = ingested.truth
    assert summary.rejected_by_rule == {}, "a clean network exports every row"
    assert len(resources["Encounter"]) == len(truth.sessions)
    assert len(resources["MedicationAdministration"]) == len(truth.sessions)
    assert len(resources["Patient"]) == truth.patients
    vitals = Counter(
        r["code"]["coding"][0]["code"]
        for r in resources["Observation"]
        if r["category"][0]["coding"][0]["code"] == "vital-signs"
        and r["identifier"][0]["system"].endswith("vital-sign")
    )
    for code in ("85354-9", "8867-4", "2708-6", "9279-1"):
        assert vitals[code] == truth.readings, code
    # The monitor sends six OBX per reading (+ temperature when taken); FHIR folds SBP/DBP into the panel and MAP
    # is derived: 4 Observations per reading plus the temperatures.
    assert sum(vitals[c] for c in VITAL_LOINC) == truth.observations - 2 * truth.readings
    forms = Counter(r["questionnaire"].rsplit("/", 1)[-1] for r in resources["QuestionnaireResponse"])
    expected = {"44249-1": "phq9", "69737-5": "gad7", "cssrs-screener": "cssrs", "cadss": "cadss", "madrs": "madrs"}
    assert {expected[k]: n for k, n in forms.items()} == dict(truth.questionnaires)
    assert len(resources["AdverseEvent"]) == len(truth.adverse_events)
    assert Counter(r["event"]["text"] for r in resources["AdverseEvent"]) == Counter(
        e["term_label"] for e in _truth_events_with_labels(truth)
    )
    assert summary.counts == {t: len(v) for t, v in resources.items() if t != "OperationOutcome"}


def _truth_events_with_labels(truth) -> list[dict]:
    from clinic_pipeline.simulator.config import load_network_config

    labels = {term: spec["label"] for term, spec in _all_terms(load_network_config())}
    return [{**e, "term_label": labels[e["term"]]} for e in truth.adverse_events]


def _all_terms(config: dict):
    events = config["adverse_events"]
    return [*events["terms"].items(), *events["derived_terms"].items()]


def test_events_the_safety_rules_detected_are_exported_once(faulty_ingested, tmp_path):
    """(A faulty network: staff records held in quarantine leave detected events that nobody recorded.)"""
    from clinic_pipeline.lake import Lake
    from clinic_pipeline.safety.marts import build_marts

    copy = tmp_path / "lake"
    shutil.copytree(faulty_ingested.root, copy)
    lake = Lake(copy)
    build_marts(lake)
    export_fhir(lake)
    events = read_export(copy)["AdverseEvent"]
    detected = [e for e in events if e["identifier"]["system"].endswith("detected-adverse-event")]
    mart = pd.read_parquet(copy / "marts" / "adverse_events.parquet")
    expected = mart[
        mart["origin"].ne("staff_recorded") & mart["counts_in_incidence"] & mart["matched_staff_ae_id"].isna()
    ]
    assert len(detected) == len(expected) > 0
    assert {e["extension"][-1]["valueCode"] for e in detected} <= set(expected["source_rule"])
    staff = [e for e in events if e["identifier"]["system"].endswith(":adverse-event")]
    staged = lake.read_parquets(lake.staged_table("adverse_events"))
    assert len(staff) <= len(staged), "staff-recorded events are not sent twice"
    report = validate_files(sorted((copy / "fhir" / "export").glob("*.ndjson")))
    assert report.ok, [str(p) for p in report.problems[:5]]


def test_every_suicidality_answer_reaches_fhir(clean_export):
    ingested, _, resources = clean_export
    item9 = {}
    for response in resources["QuestionnaireResponse"]:
        for item in response.get("item", []):
            if item["linkId"] == "44260-8":
                item9[response["identifier"]["value"]] = item["answer"][0]["valueCoding"]["code"]
    flagged = [f for f in ingested.truth.suicidality_flags if f["rule"] == "phq9_item9"]
    assert flagged
    for flag in flagged:
        assert item9[flag["questionnaire_id"]] != "LA6568-5", "a positive item 9 must not read 'Not at all'"


def test_every_exported_resource_is_valid_r4(clean_export):
    ingested, _, resources = clean_export
    files = sorted((ingested.root / "fhir" / "export").glob("*.ndjson"))
    report = validate_files(files)
    assert report.ok, [str(p) for p in report.problems[:20]]
    schema = json.loads(gzip.decompress(SCHEMA.read_bytes()))
    for rtype, items in resources.items():
        validator = jsonschema.Draft6Validator({"definitions": schema["definitions"], "$ref": f"#/definitions/{rtype}"})
        for resource in items[:400]:  # the schema validator is slow (~1 ms); every shape occurs in the first 400
            errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(resource)]
            assert not errors, (rtype, resource["id"], errors[:3])


def test_faulty_network_exports_nothing_dangling_and_explains_every_rejection(faulty_export):
    ingested, summary, resources = faulty_export
    known = {f"{t}/{r['id']}" for t, items in resources.items() for r in items}
    for items in resources.values():
        for resource in items:
            for ref in references(resource):
                assert ref in known, (resource["resourceType"], ref)
    assert summary.rejected_by_rule.get("reference_unresolved", 0) > 0
    outcomes = resources["OperationOutcome"]
    assert len(outcomes) == sum(summary.rejected_by_rule.values())
    manifest = json.loads((ingested.root / "fhir" / "export" / "manifest.json").read_text())
    assert manifest["error"] == [
        {"type": "OperationOutcome", "url": manifest["error"][0]["url"], "count": len(outcomes)}
    ]
    assert {o["type"]: o["count"] for o in manifest["output"]} == summary.counts
    assert all("not exported" in o["issue"][0]["diagnostics"] for o in outcomes)
    quarantine = ingested.lake.read_parquets(ingested.lake.path("quarantine", "fhir"))
    assert len(quarantine) == len(outcomes) and quarantine["rule"].notna().all() and quarantine["row_key"].notna().all()
    # Every staged session either became an Encounter or is explained by a rejection.
    sessions = ingested.lake.read_parquets(ingested.lake.staged_table("infusion_sessions"))
    rejected_sessions = set(quarantine.loc[quarantine["source_table"] == "infusion_sessions", "row_key"])
    assert len(resources["Encounter"]) + len(rejected_sessions) == len(sessions)
    report = validate_files(sorted((ingested.root / "fhir" / "export").glob("*.ndjson")))
    assert report.ok, [str(p) for p in report.problems[:10]]


def test_a_rerun_writes_identical_bytes(clean_ingested, clean_export, tmp_path):
    before = digest(clean_ingested.root)
    copy = tmp_path / "lake"
    shutil.copytree(clean_ingested.root, copy)
    shutil.rmtree(copy / "fhir")
    from clinic_pipeline.lake import Lake

    export_fhir(Lake(copy))
    elsewhere = digest(copy)
    assert elsewhere.pop("manifest.json") != before["manifest.json"], "the manifest points to its own lake's files"
    assert elsewhere == {name: h for name, h in before.items() if name != "manifest.json"}
    export_fhir(clean_ingested.lake)
    assert digest(clean_ingested.root) == before


def test_validate_fhir_cli(clean_export, tmp_path, capsys):
    ingested, _, resources = clean_export
    export = ingested.root / "fhir" / "export"
    assert main(["validate-fhir", str(export)]) == 0
    assert "0 problems" in capsys.readouterr().out

    bp = next(r for r in resources["Observation"] if r["code"]["coding"][0]["code"] == "85354-9")
    hr = next(r for r in resources["Observation"] if r["code"]["coding"][0]["code"] == "8867-4")
    bad_bp = {**bp, "component": bp["component"][:1], "status": "finished"}
    bad_hr = {
        **hr,
        "valueQuantity": {**hr["valueQuantity"], "code": "mmHg"},
        "subject": {"reference": "Patient/nobody"},
    }
    broken = tmp_path / "broken.ndjson"
    broken.write_bytes(orjson.dumps(bad_bp) + b"\n" + orjson.dumps(bad_hr) + b"\n{not json\n")
    assert main(["validate-fhir", str(broken), str(export / "Patient.ndjson"), str(export / "Encounter.ndjson")]) == 1
    out = capsys.readouterr().out
    assert f"broken.ndjson:1 Observation/{bp['id']} status:" in out
    assert f"broken.ndjson:1 Observation/{bp['id']} component: bp profile: exactly one diastolic" in out
    assert f"broken.ndjson:2 Observation/{hr['id']} valueQuantity" in out and "'mmHg'" in out
    assert "reference Patient/nobody does not resolve" in out
    assert "broken.ndjson:3 - (root): not a JSON object" in out

    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": bad_bp}]}))
    assert main(["validate-fhir", str(bundle)]) == 1
    assert "bundle.json:1:entry[0]" in capsys.readouterr().out
