"""Delivery to a real FHIR server (Medplum's router on its in-memory repository, started by the tests), with
faults injected between the pipeline and the server: nothing lost, nothing duplicated."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from clinic_pipeline.cli import main
from clinic_pipeline.fhir.delivery import (
    DeliveryError,
    FhirTarget,
    _check_outcomes,
    deliver,
    plan_delivery,
    send_outbox,
)
from clinic_pipeline.fhir.export import export_fhir
from clinic_pipeline.lake import Lake
from tests.conftest import generate
from tests.fhir.staged_rows import staged_patients, write_lake
from tests.fhir_server.fixtures import errors, run_independent_validator, search_count

TYPES = ("Organization", "Patient", "Encounter", "MedicationAdministration", "Observation", "QuestionnaireResponse")


@pytest.fixture(scope="module")
def exported_lake(tmp_path_factory) -> Path:
    """Four patients' sessions, exported (70 resources in 5 bundles). The test server (Medplum's in-memory
    repository) spends ~20 ms an entry, so delivery tests use a hand-made network, not a simulated one."""
    root = tmp_path_factory.mktemp("delivery") / "lake"
    export_fhir(write_lake(root, staged_patients(4)))
    return root


@pytest.fixture
def lake(exported_lake, tmp_path) -> Lake:
    """A private copy of the exported lake (outbox and ledger are per test)."""
    shutil.copytree(exported_lake, tmp_path / "lake")
    return Lake(tmp_path / "lake")


def exported(lake: Lake) -> dict[str, int]:
    manifest = orjson.loads(lake.path("fhir", "export", "manifest.json").read_bytes())
    return {o["type"]: o["count"] for o in manifest["output"]}


def server_counts(base_url: str) -> dict[str, int]:
    return {t: search_count(base_url, t) for t in (*TYPES, "AdverseEvent", "Provenance")}


def quick(base_url: str, attempts: int = 6) -> FhirTarget:
    return FhirTarget(base_url, timeout_s=3.0, max_attempts=attempts, backoff_s=0.01, backoff_max_s=0.05)


def test_first_delivery_creates_everything_once_and_a_redelivery_creates_nothing(lake, fresh_fhir_server):
    base = fresh_fhir_server.base_url
    report = deliver(lake, quick(base))
    assert report.ok and report.sent == report.planned > 1 and report.failed == report.pending == 0
    counts = exported(lake)
    assert server_counts(base) == {t: counts.get(t, 0) for t in server_counts(base)}

    again = deliver(lake, quick(base))
    assert again.planned == 0, "the ledger knows the server has everything"

    # Forget the ledger: the same data sent again must still create nothing (conditional updates, fixed ids).
    shutil.rmtree(Path(str(lake.path("state", "fhir_delivery"))))
    shutil.rmtree(Path(str(lake.path("fhir", "outbox"))))
    forced = deliver(lake, quick(base))
    assert forced.sent == report.sent and forced.created == 0 and forced.updated == forced.entries
    assert server_counts(base) == {t: counts.get(t, 0) for t in server_counts(base)}

    # A searchable identifier finds exactly one resource.
    session = orjson.loads(lake.path("fhir", "export", "Encounter.ndjson").read_bytes().splitlines()[0])
    value = session["identifier"][0]["value"]
    assert search_count(base, "Encounter", identifier=f"urn:ketamine-network:session|{value}") == 1


def test_server_down_keeps_everything_in_the_outbox_until_it_comes_back(lake, fresh_fhir_server, fault_proxy):
    target = quick(fault_proxy.base_url)
    fault_proxy.stop()  # connection refused
    down = deliver(lake, target)
    assert down.sent == 0 and down.pending == down.planned > 0 and not down.ok
    pending = sorted(p.name for p in lake.path("fhir", "outbox", target.key, "pending").glob("*.json"))
    assert len(pending) == down.planned
    assert search_count(fresh_fhir_server.base_url, "Patient") == 0

    fault_proxy.start()  # back on the same port: the next run sends what waited
    up = deliver(lake, target)
    assert up.ok and up.sent == down.planned
    counts = exported(lake)
    assert server_counts(fresh_fhir_server.base_url) == {
        t: counts.get(t, 0) for t in server_counts(fresh_fhir_server.base_url)
    }
    assert not list(lake.path("fhir", "outbox", target.key, "pending").glob("*.json"))


def test_transient_faults_and_lost_responses_are_retried_without_duplicates(lake, fresh_fhir_server, fault_proxy):
    target = quick(fault_proxy.base_url, attempts=8)  # the seven faults all hit the first bundle
    planned = plan_delivery(lake, target)
    faults = ["500", "429", "lost_response", "reset", "503", "timeout", "lost_response"]
    fault_proxy.schedule(faults)
    report = send_outbox(lake, target)
    assert report.ok and report.sent == planned
    fault_proxy.stop()  # the held "timeout" connection is logged when it ends, after the retry that followed it
    assert sorted(r.fault for r in fault_proxy.requests if r.fault != "ok") == sorted(faults)
    assert len(fault_proxy.requests) == planned + 7, "every fault cost exactly one retry"
    counts = exported(lake)
    assert server_counts(fresh_fhir_server.base_url) == {
        t: counts.get(t, 0) for t in server_counts(fresh_fhir_server.base_url)
    }


def test_a_bundle_the_server_rejects_goes_to_failed_with_its_answer_and_the_rest_flows(
    lake, fresh_fhir_server, fault_proxy
):
    target = quick(fault_proxy.base_url)
    planned = plan_delivery(lake, target)
    fault_proxy.schedule(["400"])
    report = send_outbox(lake, target)
    assert report.failed == 1 and report.sent == planned - 1 and not report.ok
    failed = lake.path("fhir", "outbox", target.key, "failed")
    names = sorted(p.name for p in failed.glob("*.json"))
    assert len(names) == 2 and names[1].endswith(".response.json")
    assert orjson.loads((failed / names[1]).read_bytes())["resourceType"] == "OperationOutcome"
    assert "HTTP 400" in report.errors[0]


def test_an_identifier_with_a_plus_and_a_space_is_url_encoded(tmp_path, fresh_fhir_server):
    from clinic_pipeline.fhir.delivery import _entry

    entry = _entry({"resourceType": "Patient", "id": "x1", "identifier": [{"system": "urn:s", "value": "a+b c"}]})
    assert entry["request"]["url"] == "Patient?identifier=urn%3As%7Ca%2Bb%20c"
    assert "id" not in entry["resource"], "a conditional update carries no id of ours"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    import httpx

    for _ in range(2):
        answer = httpx.post(fresh_fhir_server.base_url, json=bundle, headers={"Content-Type": "application/fhir+json"})
        assert answer.status_code == 200, answer.text
    assert search_count(fresh_fhir_server.base_url, "Patient", identifier="urn:s|a+b c") == 1
    assert search_count(fresh_fhir_server.base_url, "Patient") == 1


def test_every_entry_outcome_is_checked():
    bundle = {"entry": [{"request": {"url": "Patient?identifier=x"}}, {"request": {"url": "Observation?identifier=y"}}]}
    ok = orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [{"response": {"status": "201 Created"}}, {"response": {"status": "200 OK"}}],
        }
    )
    assert _check_outcomes(bundle, ok) == ["201 Created", "200 OK"]
    short = orjson.dumps(
        {"resourceType": "Bundle", "type": "transaction-response", "entry": [{"response": {"status": "201"}}]}
    )
    with pytest.raises(DeliveryError, match="1 outcomes for 2 entries"):
        _check_outcomes(bundle, short)
    bad = orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [{"response": {"status": "201"}}, {"response": {"status": "422 Unprocessable"}}],
        }
    )
    with pytest.raises(DeliveryError, match="Observation: 422"):
        _check_outcomes(bundle, bad)


def test_the_export_passes_the_independent_validator_and_the_validating_server(clean_ingested):
    """Medplum's validator (not our code) against the R4 base definitions and the vital-signs profiles."""
    export_fhir(clean_ingested.lake)
    files = sorted((clean_ingested.root / "fhir" / "export").glob("*.ndjson"))
    report = run_independent_validator([f for f in files if f.stem != "OperationOutcome"])
    assert report["checked"] > 5_000
    assert not errors(report), errors(report)[:5]
    assert not report["unresolved_profiles"], "every meta.profile we declare was validated against"


def test_cli_run_exits_1_and_keeps_the_outbox_when_the_fhir_server_is_down(tmp_path, fault_proxy, capsys):
    network = generate(tmp_path, clinics=1, days=1, seed=23)
    lake = tmp_path / "lake"
    fault_proxy.stop()
    code = main(["run", "--landing", str(network.landing), "--lake", str(lake), "--fhir-url", fault_proxy.base_url])
    captured = capsys.readouterr()
    assert code == 1
    assert "FHIR export:" in captured.out and "0 rejected" in captured.out
    assert "server unavailable" in captured.err
    pending = list((lake / "fhir" / "outbox").glob("*/pending/*.json"))
    assert pending and "pending" in captured.out


def test_an_airflow_connection_names_the_fhir_server():
    from airflow.models.connection import Connection

    from clinic_pipeline.orchestration.fhir_tasks import target_from_connection

    full = target_from_connection(Connection(conn_id="clinic_fhir", conn_type="http", host="http://hapi:8080/fhir"))
    assert full.base_url == "http://hapi:8080/fhir" and full.headers == {}
    parts = Connection(
        conn_id="clinic_fhir",
        conn_type="http",
        host="fhir.example.org",
        schema="https",
        port=443,
        login="pipeline",
        password="s3cret",
        extra='{"path": "/r4", "timeout": 12, "max_attempts": 3}',
    )
    target = target_from_connection(parts)
    assert target.base_url == "https://fhir.example.org:443/r4"
    assert target.headers["Authorization"].startswith("Basic ") and (target.timeout_s, target.max_attempts) == (12, 3)
    token = Connection(conn_id="c", conn_type="http", host="http://h/fhir", extra='{"token": "abc"}')
    assert target_from_connection(token).headers == {"Authorization": "Bearer abc"}
