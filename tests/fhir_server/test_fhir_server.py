"""The test infrastructure itself: the Medplum FHIR server, the independent validator and the fault proxy."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.fhir_server.fault_proxy import FaultProxy
from tests.fhir_server.fixtures import FhirServer, errors, fhir_request, run_independent_validator, search_count

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
VITALS = "http://hl7.org/fhir/StructureDefinition/"
PATIENT_ID = ("urn:oid:2.16.840.1.113883.3.9999.1", "KC+0042")  # a `+` that must survive URL encoding


def quantity(value: float, ucum: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit or ucum, "system": UCUM, "code": ucum}


def vital_sign(ident: str, profile: str, loinc: str, subject: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": ident,
        "meta": {"profile": [VITALS + profile]},
        "identifier": [{"system": "urn:clinic:vitals", "value": ident}],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": subject},
        "effectiveDateTime": "2024-03-05T10:15:00+01:00",
        **fields,
    }


def bp_component(loinc: str, value: float, ucum: str = "mm[Hg]", unit: str = "mmHg") -> dict[str, Any]:
    return {"code": {"coding": [{"system": LOINC, "code": loinc}]}, "valueQuantity": quantity(value, ucum, unit)}


def blood_pressure(ident: str, subject: str, *components: dict[str, Any], **fields: Any) -> dict[str, Any]:
    parts = components or (bp_component("8480-6", 128), bp_component("8462-4", 79))
    return vital_sign(ident, "bp", "85354-9", subject, component=list(parts), **fields)


def heart_rate(ident: str, subject: str, value: dict[str, Any] | None = None) -> dict[str, Any]:
    return vital_sign(ident, "heartrate", "8867-4", subject, valueQuantity=value or quantity(72, "/min", "beats/min"))


def oxygen_saturation(ident: str, subject: str) -> dict[str, Any]:
    return vital_sign(ident, "oxygensat", "2708-6", subject, valueQuantity=quantity(97, "%"))


def session_bundle(base_url: str, adverse_event_id: str) -> dict[str, Any]:
    """A transaction as a delivery would send it: Patient by conditional update on its identifier, Encounter and
    Observation by conditional create, AdverseEvent by update-as-create with a client id; urn:uuid references."""
    patient_url, encounter_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    system, value = PATIENT_ID
    observation = blood_pressure("bp-session-1", patient_url, encounter={"reference": encounter_url})
    del observation["id"]
    encounter = {
        "resourceType": "Encounter",
        "identifier": [{"system": "urn:clinic:encounter", "value": "enc-1"}],
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": patient_url},
    }
    adverse_event = {
        "resourceType": "AdverseEvent",
        "id": adverse_event_id,
        "actuality": "actual",
        "event": {"text": "transient hypertension"},
        "subject": {"reference": patient_url},
        "encounter": {"reference": encounter_url},
        "date": "2024-03-05T10:40:00+01:00",
    }
    patient = {"resourceType": "Patient", "identifier": [{"system": system, "value": value}], "gender": "female"}
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": patient,
                "request": {"method": "PUT", "url": f"Patient?identifier={quote(f'{system}|{value}', safe='')}"},
            },
            {
                "fullUrl": encounter_url,
                "resource": encounter,
                "request": {
                    "method": "POST",
                    "url": "Encounter",
                    "ifNoneExist": "identifier=urn%3Aclinic%3Aencounter%7Cenc-1",
                },
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": observation,
                "request": {
                    "method": "POST",
                    "url": "Observation",
                    "ifNoneExist": "identifier=urn%3Aclinic%3Avitals%7Cbp-session-1",
                },
            },
            {
                "fullUrl": f"{base_url}/AdverseEvent/{adverse_event_id}",
                "resource": adverse_event,
                "request": {"method": "PUT", "url": f"AdverseEvent/{adverse_event_id}"},
            },
        ],
    }


def counts(base_url: str) -> dict[str, int]:
    return {t: search_count(base_url, t) for t in ("Patient", "Encounter", "Observation", "AdverseEvent")}


def test_transaction_creates_once_and_a_replay_creates_nothing(fresh_fhir_server: FhirServer) -> None:
    base = fresh_fhir_server.base_url
    adverse_event_id = str(uuid.uuid4())
    bundle = session_bundle(base, adverse_event_id)

    status, response = fhir_request("POST", base, bundle)
    assert status == 200, response
    assert response is not None and response["type"] == "transaction-response"
    # Medplum answers an update-as-create (the AdverseEvent's client id) with 200, where FHIR says 201.
    assert [e["response"]["status"][:3] for e in response["entry"]] == ["201", "201", "201", "200"]
    assert counts(base) == {"Patient": 1, "Encounter": 1, "Observation": 1, "AdverseEvent": 1}

    status, replay = fhir_request("POST", base, bundle)
    assert status == 200, replay
    assert replay is not None and not any(e["response"]["status"].startswith("201") for e in replay["entry"])
    assert counts(base) == {"Patient": 1, "Encounter": 1, "Observation": 1, "AdverseEvent": 1}

    # The `+` was matched literally (unencoded, it would be read as a space).
    system, value = PATIENT_ID
    assert search_count(base, "Patient", identifier=f"{system}|{value}") == 1
    assert search_count(base, "Patient", identifier=f"{system}|{value.replace('+', ' ')}") == 0
    # The urn:uuid references were rewritten to the server's ids, and the client id was kept.
    status, found = fhir_request("GET", f"{base}/Observation?identifier=urn%3Aclinic%3Avitals%7Cbp-session-1")
    assert status == 200 and found is not None
    observation = found["entry"][0]["resource"]
    patient_id = response["entry"][0]["response"]["location"].split("/")[1]
    encounter_id = response["entry"][1]["response"]["location"].split("/")[1]
    assert observation["subject"] == {"reference": f"Patient/{patient_id}"}
    assert observation["encounter"] == {"reference": f"Encounter/{encounter_id}"}
    assert search_count(base, "Observation", subject=f"Patient/{patient_id}", code=f"{LOINC}|85354-9") == 1
    status, adverse_event = fhir_request("GET", f"{base}/AdverseEvent/{adverse_event_id}")
    assert status == 200 and adverse_event is not None
    assert adverse_event["subject"] == {"reference": f"Patient/{patient_id}"}


def test_a_large_conditional_transaction_is_processed_entry_by_entry(fresh_fhir_server: FhirServer) -> None:
    """Medplum's own transaction mode refuses more than 8 entries once one is conditional; this server processes
    transactions like batches (README): every entry runs, a failing one is reported in its own response."""
    base = fresh_fhir_server.base_url
    entries = [
        {
            "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": f"p{i}"}]},
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier=urn%3Atest%7Cp{i}"},
        }
        for i in range(12)
    ]
    entries.insert(
        5, {"resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient/other-id"}}
    )
    status, response = fhir_request("POST", base, {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert status == 200, response
    assert response is not None and response["type"] == "transaction-response"
    statuses = [e["response"]["status"][:3] for e in response["entry"]]
    assert statuses == ["201"] * 5 + ["400"] + ["201"] * 7
    assert search_count(base, "Patient") == 12


def write_ndjson(path: Path, resources: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")
    return path


def test_validator_accepts_valid_vital_signs(tmp_path: Path) -> None:
    resources = [
        blood_pressure("bp-ok", "Patient/p1"),
        heart_rate("hr-ok", "Patient/p1"),
        oxygen_saturation("spo2-ok", "Patient/p1"),
    ]
    bundle = session_bundle("http://example.org/fhir", str(uuid.uuid4()))
    bundle_path = tmp_path / "transaction.json"
    bundle_path.write_text(json.dumps(bundle), encoding="utf-8")

    report = run_independent_validator([write_ndjson(tmp_path / "vitals.ndjson", resources), bundle_path])

    assert errors(report) == []
    assert report["by_type"] == {"Observation": 4, "Bundle": 1, "Patient": 1, "Encounter": 1, "AdverseEvent": 1}
    assert report["checked"] == 8
    assert report["unresolved_profiles"] == {}


def test_validator_reports_missing_diastolic_and_wrong_ucum(tmp_path: Path) -> None:
    resources = [
        blood_pressure("bp-ok", "Patient/p1"),
        blood_pressure("bp-no-diastolic", "Patient/p1", bp_component("8480-6", 128)),
        heart_rate("hr-mmhg", "Patient/p1", quantity(72, "mm[Hg]", "mmHg")),
        blood_pressure("bp-wrong-unit", "Patient/p1", bp_component("8480-6", 128), bp_component("8462-4", 79, "/min")),
    ]
    path = write_ndjson(tmp_path / "vitals.ndjson", resources)
    (tmp_path / "bad.json").write_text(
        json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resources[2]}]})
    )

    report = run_independent_validator([path, tmp_path / "bad.json"])

    by_id: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for problem in errors(report):
        by_id.setdefault((problem["id"], problem["line"]), []).append(problem)
    assert set(by_id) == {("bp-no-diastolic", 2), ("hr-mmhg", 3), ("bp-wrong-unit", 4), ("hr-mmhg", None)}
    us_core_bp = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure"
    assert any(
        p["profile"] == us_core_bp and "diastolic" in p["message"] and p["expression"] == "Observation.component"
        for p in by_id["bp-no-diastolic", 2]
    )
    assert [(p["profile"], p["expression"]) for p in by_id["hr-mmhg", 3]] == [
        (VITALS + "heartrate", "Observation.value[x].code")
    ]
    assert [(p["profile"], p["expression"]) for p in by_id["bp-wrong-unit", 4]] == [
        (us_core_bp, "Observation.component.value[x].code")
    ]
    assert by_id["hr-mmhg", None][0]["file"].endswith("bad.json") and by_id["hr-mmhg", None][0]["entry"] == 0


def test_validating_server_rejects_what_the_validator_rejects(validating_fhir_server: FhirServer) -> None:
    base = validating_fhir_server.base_url
    status, outcome = fhir_request(
        "POST", f"{base}/Observation", heart_rate("hr-mmhg", "Patient/p1", quantity(72, "mm[Hg]"))
    )
    assert status == 400
    assert outcome is not None and outcome["resourceType"] == "OperationOutcome"
    assert "heartrate" in outcome["issue"][0]["details"]["text"]
    status, created = fhir_request("POST", f"{base}/Observation", heart_rate("hr-ok", "Patient/p1"))
    assert status == 201, created


def post_patient(base_url: str, value: str, timeout: float = 5.0) -> tuple[int, dict[str, Any] | None]:
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": value}]}
    return fhir_request("POST", f"{base_url}/Patient", patient, timeout=timeout)


def test_proxy_answers_status_faults_without_forwarding(fresh_fhir_server: FhirServer, fault_proxy: FaultProxy) -> None:
    fault_proxy.schedule(["500", "503", "429"])
    statuses = [post_patient(fault_proxy.base_url, "status-fault")[0] for _ in range(3)]
    assert statuses == [500, 503, 429]
    assert search_count(fresh_fhir_server.base_url, "Patient") == 0

    request = urllib.request.Request(f"{fault_proxy.base_url}/Patient", method="GET")
    fault_proxy.schedule(["429"])
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.headers["Retry-After"] == "0"

    assert post_patient(fault_proxy.base_url, "status-fault")[0] == 201
    assert [(r.method, r.path, r.fault, r.status) for r in fault_proxy.requests] == [
        ("POST", "/fhir/R4/Patient", "500", 500),
        ("POST", "/fhir/R4/Patient", "503", 503),
        ("POST", "/fhir/R4/Patient", "429", 429),
        ("GET", "/fhir/R4/Patient", "429", 429),
        ("POST", "/fhir/R4/Patient", "ok", 201),
    ]
    assert search_count(fresh_fhir_server.base_url, "Patient") == 1


def test_proxy_timeout_holds_the_request_past_the_client_timeout(
    fresh_fhir_server: FhirServer, fault_proxy: FaultProxy
) -> None:
    fault_proxy.schedule(["timeout"])
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        post_patient(fault_proxy.base_url, "held", timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert search_count(fresh_fhir_server.base_url, "Patient") == 0
    assert post_patient(fault_proxy.base_url, "after-timeout")[0] == 201


def test_proxy_reset_drops_the_connection_without_forwarding(
    fresh_fhir_server: FhirServer, fault_proxy: FaultProxy
) -> None:
    fault_proxy.schedule(["reset"])
    with pytest.raises(ConnectionError):
        post_patient(fault_proxy.base_url, "reset")
    assert search_count(fresh_fhir_server.base_url, "Patient") == 0
    assert fault_proxy.requests[0].status is None


def test_proxy_lost_response_commits_on_the_server_but_the_client_never_hears(
    fresh_fhir_server: FhirServer, fault_proxy: FaultProxy
) -> None:
    fault_proxy.schedule(["lost_response"])
    with pytest.raises(ConnectionError):
        post_patient(fault_proxy.base_url, "lost")
    assert search_count(fresh_fhir_server.base_url, "Patient", identifier="urn:test|lost") == 1

    # Why it matters: a blind retry of a plain create duplicates; a conditional create does not.
    assert post_patient(fault_proxy.base_url, "lost")[0] == 201
    assert search_count(fresh_fhir_server.base_url, "Patient", identifier="urn:test|lost") == 2
    fault_proxy.schedule(["lost_response"])
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": "conditional"}]}
    headers = {"If-None-Exist": "identifier=urn%3Atest%7Cconditional"}
    with pytest.raises(ConnectionError):
        fhir_request("POST", f"{fault_proxy.base_url}/Patient", patient, headers=headers)
    status, _ = fhir_request("POST", f"{fault_proxy.base_url}/Patient", patient, headers=headers)
    assert status == 200  # found, not created again
    assert search_count(fresh_fhir_server.base_url, "Patient", identifier="urn:test|conditional") == 1


def test_stopped_proxy_refuses_connections_until_restarted_on_the_same_port(
    fresh_fhir_server: FhirServer, fault_proxy: FaultProxy
) -> None:
    base = fault_proxy.base_url
    assert post_patient(base, "before")[0] == 201
    fault_proxy.stop()
    with pytest.raises(urllib.error.URLError) as raised:
        post_patient(base, "down")
    assert isinstance(raised.value.reason, ConnectionRefusedError)
    assert fault_proxy.start() == base
    assert post_patient(base, "after")[0] == 201
    assert search_count(fresh_fhir_server.base_url, "Patient") == 2
