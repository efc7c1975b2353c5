"""docker-compose.yml against the official Compose Specification JSON schema (vendored, see fixtures/README.md).

Compose validates the model after interpolation; so do these tests (variables from deploy/env.example). No
Docker engine or `docker compose` plugin is needed, or available where these tests run.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import jsonschema
import pytest

from tests.deploy.compose_model import compose, raw_compose, read_env_file, test_env

SCHEMA_FILE = Path(__file__).parent / "fixtures" / "compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _errors(validator, document) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_vendored_schema_is_the_one_recorded():
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_is_valid_against_the_compose_spec(validator):
    assert _errors(validator, compose()) == []


def test_it_stays_valid_with_every_optional_setting_changed(validator):
    env = test_env(
        CONN_CLINIC_EHR="postgresql+psycopg2://reader:pw@ehr-replica:5432/ehr",
        CONN_CLINIC_FHIR='{"conn_type": "http", "host": "https://fhir.network.example/fhir"}',
        CLINIC_WORKER_CONCURRENCY="8",
        EVENT_BUS_BIND="10.8.0.1",
        CLINIC_LAKE_DIR="/srv/clinic/lake",
    )
    assert _errors(validator, compose(env)) == []


def test_the_validator_catches_what_compose_would_refuse(validator):
    """The schema is not vacuous: typos and wrong types in a service are errors."""
    model = compose()
    broken = copy.deepcopy(model)
    broken["services"]["hapi"]["healthcheck"]["retry"] = 5  # not a healthcheck key
    broken["services"]["dashboard"]["ports"] = "8081:8080"  # must be a list
    broken["services"]["redis"]["depends_on"] = {"postgres": {"condition": "healthy"}}  # not a condition
    errors = _errors(validator, broken)
    assert any("services/hapi/healthcheck" in e for e in errors), errors
    assert any("services/dashboard/ports" in e for e in errors), errors
    assert any("services/redis/depends_on" in e for e in errors), errors


def test_the_raw_file_uses_only_spec_top_level_keys_and_extensions():
    keys = set(raw_compose())
    assert keys - {k for k in keys if k.startswith("x-")} <= {"name", "services", "volumes", "secrets"}
    assert read_env_file()  # env.example parses
