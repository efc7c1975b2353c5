"""The simulator's output is in the real formats, checked with independent parsers and the official schema."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import sqlite3
import uuid
from pathlib import Path

import hl7
import jsonschema
import psycopg2
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from clinic_pipeline.simulator.runner import SimulationOptions, simulate
from tests.simulator.landing_reader import hl7_files, ndjson_resources, redcap_rows, split_hl7_batch

SCHEMA = Path(__file__).parents[1] / "fixtures" / "fhir-r4.schema.json.gz"
HL7_TS = re.compile(r"^\d{14}[+-]\d{4}$")


@pytest.fixture(scope="module")
def questionnaire_response_validator() -> jsonschema.Draft6Validator:
    """The official FHIR R4 JSON schema (hl7.org/fhir/json-schema/4.0), narrowed to QuestionnaireResponse."""
    schema = json.loads(gzip.decompress(SCHEMA.read_bytes()))
    assert schema["id"] == "http://hl7.org/fhir/json-schema/4.0"
    return jsonschema.Draft6Validator(
        {"definitions": schema["definitions"], "$ref": "#/definitions/QuestionnaireResponse"}
    )


def test_monitor_messages_validate_strictly_with_hl7apy(small_network):
    """hl7apy's strict ORU^R01 v2.6 validation on a sample (it costs ~60 ms a message): 12 from every other file."""
    checked = 0
    for path in hl7_files(small_network.landing)[::2]:
        for raw in split_hl7_batch(path.read_bytes())[:12]:
            msg = parse_message(raw.decode("utf-8"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
            msg.validate()
            assert msg.msh.msh_9.to_er7() == "ORU^R01^ORU_R01"
            assert msg.msh.msh_12.to_er7() == "2.6"
            order = msg.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION
            for observation in order.ORU_R01_OBSERVATION:
                assert observation.obx.obx_2.to_er7() == "NM"
                float(observation.obx.obx_5.to_er7())
                assert HL7_TS.match(observation.obx.obx_14.to_er7()), "observation time carries its UTC offset"
            checked += 1
    assert checked >= 36


def test_every_batch_file_reads_with_python_hl7_and_links_to_the_ehr(small_network):
    ehr = sqlite3.connect(small_network.ehr_path)
    sessions = dict(ehr.execute("select session_id, patient_id from infusion_sessions"))
    mrns = dict(ehr.execute("select patient_id, mrn from patients"))
    messages = observations = 0
    for path in hl7_files(small_network.landing):
        (batch,) = hl7.parse_file(path.read_bytes().decode("utf-8"))
        assert str(batch.header[11]) == path.stem  # BHS-11 batch control id = batch id
        assert int(str(batch.trailer[1])) == len(batch)  # BTS-1 message count
        for msg in batch:
            session_id = str(msg.segment("PV1")[19][0][0])
            assert session_id in sessions, "PV1-19 must name an EHR infusion session"
            assert str(msg.segment("PID")[3][0][0]) == mrns[sessions[session_id]]
            obx = msg.segments("OBX")
            assert all(HL7_TS.match(str(o[14])) for o in obx)
            observations += len(obx)
            messages += 1
    truth = small_network.truth["counts"]
    assert messages == truth["vital_readings"]
    assert observations == truth["vital_observations"]


def test_both_code_styles_appear_and_map_to_vitals(small_network):
    systems = set()
    for path in hl7_files(small_network.landing):
        for segment in path.read_bytes().split(b"\r"):
            if segment.startswith(b"OBX|"):
                systems.add(segment.split(b"|")[3].split(b"^")[-1])
    assert systems == {b"MDC", b"LN"}


def test_questionnaire_responses_validate_against_official_r4_schema(small_network, questionnaire_response_validator):
    resources = ndjson_resources(small_network.landing)
    assert len(resources) == sum(small_network.truth["counts"]["questionnaires"][k] for k in ("phq9", "gad7", "cssrs"))
    for resource in resources:
        errors = [e.message for e in questionnaire_response_validator.iter_errors(resource)]
        assert errors == [], (resource["id"], errors)
        assert dt.datetime.fromisoformat(resource["authored"]).utcoffset() is not None
        uuid.UUID(resource["id"])
    questionnaires = {r["questionnaire"] for r in resources}
    assert questionnaires == {
        "http://loinc.org/q/44249-1",
        "http://loinc.org/q/69737-5",
        "urn:ketamine-network:Questionnaire/cssrs-screener",
    }


def test_schema_check_is_not_a_rubber_stamp(small_network, questionnaire_response_validator):
    resource = ndjson_resources(small_network.landing)[0]
    broken = {**resource, "status": "done", "authored": "2026-01-05 08:00"}
    messages = " ".join(e.message for e in questionnaire_response_validator.iter_errors(broken))
    assert "'done' is not one of" in messages
    assert "does not match" in messages


def test_phq9_answers_use_loinc_answer_codes(small_network):
    allowed = {"LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"}
    phq9 = [r for r in ndjson_resources(small_network.landing) if r["questionnaire"].endswith("44249-1")]
    assert phq9
    for resource in phq9:
        assert [i["linkId"] for i in resource["item"]][-1] == "44260-8"  # item 9, the suicidality item
        assert {i["answer"][0]["valueCoding"]["code"] for i in resource["item"]} <= allowed


def test_redcap_export_has_cadss_for_every_session(small_network):
    rows = redcap_rows(small_network.landing)
    cadss = [r for r in rows if r["redcap_repeat_instrument"] == "cadss"]
    assert len(cadss) == 2 * small_network.truth["counts"]["sessions"]
    for row in cadss:
        items = [int(row[f"cadss_{i}"]) for i in range(1, 24)]
        assert all(0 <= v <= 4 for v in items)
        dt.datetime.strptime(row["cadss_datetime"], "%Y-%m-%d %H:%M")  # REDCap: local time, no offset
        assert row["cadss_complete"] == "2"


def test_ehr_opens_with_plain_sql_and_matches_the_ground_truth(small_network):
    truth = small_network.truth
    db = sqlite3.connect(small_network.ehr_path)
    assert db.execute("select count(*) from infusion_sessions").fetchone()[0] == truth["counts"]["sessions"]
    assert db.execute("select count(*) from adverse_events").fetchone()[0] == len(small_network.entered_adverse_events)
    assert db.execute("select count(*) from patients").fetchone()[0] == truth["counts"]["patients"]
    for table in ("clinics", "patients", "infusion_sessions", "adverse_events", "concomitant_medications"):
        columns = [r[1] for r in db.execute(f"pragma table_info({table})")]
        assert "updated_at" in columns, table
    dose = db.execute(
        "select min(dose_mg_per_kg), max(dose_mg_per_kg) from infusion_sessions "
        "where route = 'IV' and protocol != 'iv_pain'"
    ).fetchone()
    assert dose[0] >= 0.5 and dose[1] <= 1.0


@pytest.mark.postgres
def test_ehr_on_local_postgresql(tmp_path):
    name = f"clinic_ehr_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", dbname="postgres", user="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"create database {name}")
    try:
        url = f"postgresql+psycopg2://postgres@127.0.0.1/{name}"
        simulate(
            SimulationOptions(
                out=tmp_path / "landing",
                truth_out=tmp_path / "t.json",
                clinics=2,
                days=3,
                seed=4,
                ehr_url=url,
            )
        )
        truth = json.loads((tmp_path / "t.json").read_text())
        entered = [e for e in truth["adverse_events"] if e["entered_day"] <= truth["last_day"]]
        with psycopg2.connect(host="127.0.0.1", dbname=name, user="postgres") as conn, conn.cursor() as cur:
            cur.execute("select count(*), min(started_at) from infusion_sessions")
            count, first_start = cur.fetchone()
            assert count == truth["counts"]["sessions"]
            assert first_start.utcoffset() is not None  # timestamptz
            cur.execute("select count(*) from adverse_events")
            assert cur.fetchone()[0] == len(entered)
        assert not (tmp_path / "landing" / "ehr.sqlite").exists()
    finally:
        admin.cursor().execute(f"drop database if exists {name} with (force)")
        admin.close()
