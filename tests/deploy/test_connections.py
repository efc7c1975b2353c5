"""Connections and environment variables of docker-compose.yml against what the code reads.

- every `AIRFLOW_CONN_*` parses with Airflow's own `Connection` (task SDK: what tasks and triggers use) and is
  understood by the code that consumes it (Redis client, SQLAlchemy, the FHIR target, the alert notifiers);
- its connection id is one the code asks for, and every connection id the code asks for is set (or is an
  optional alert channel, empty = "not configured");
- every environment variable the code reads is set in the containers or deliberately left to its default,
  and no `CLINIC_*` variable is set that nothing reads; every `AIRFLOW__SECTION__KEY` is an Airflow option;
- every variable the compose file interpolates is documented in deploy/env.example.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest

from tests.deploy.compose_model import (
    AIRFLOW_SERVICES,
    REPO,
    commented_examples,
    compose,
    read_env_file,
    test_env,
    variables_used,
)

CODE_DIRS = ("clinic_pipeline", "plugins", "dags", "transforms", "fhir_mappings")
# Read by the code but deliberately not set in the containers.
LEFT_TO_DEFAULT = {
    "CLINIC_DATA": "only the fallback root of CLINIC_LAKE and CLINIC_LANDING, which are both set",
    "CLINIC_EHR_URL": "the connection clinic_ehr is set, and it wins over this fallback",
    "CLINIC_FHIR_CONN": "overrides the connection id clinic_fhir; the default id is the one set",
    "CLINIC_ALERTS_SMTP_CONN": "overrides the connection id clinic_alerts_smtp; the default id is the one set",
    "CLINIC_ALERTS_WEBHOOK_CONN": "overrides the connection id clinic_alerts_webhook; the default id is set",
    "CLINIC_QUALITY_DIR": "set by the quality gates themselves for the GX configuration (the lake's quality/)",
    "CLINIC_EVENT_STREAM": "the simulator and the watchers share the default stream clinic-pipeline:batches",
}
OPTIONAL_CONNECTIONS = {"clinic_alerts_smtp", "clinic_alerts_webhook"}
# Options of the providers the image adds (their config is not in the core description the venv knows).
PROVIDER_OPTIONS = {("celery", "result_backend"), ("celery", "broker_url"), ("celery", "worker_concurrency")}


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return compose()["x-airflow-common"]["environment"]


def _connection(conn_id: str, value: str):
    from airflow.sdk.definitions.connection import Connection

    if value.lstrip().startswith("{"):
        return Connection.from_json(value, conn_id=conn_id)
    return Connection.from_uri(value, conn_id=conn_id)


def _connections(env: dict[str, str]) -> dict[str, str]:
    prefix = "AIRFLOW_CONN_"
    return {name.removeprefix(prefix).lower(): str(value) for name, value in env.items() if name.startswith(prefix)}


def _code_connection_ids(monkeypatch) -> set[str]:
    from clinic_pipeline.alerts.task import smtp_conn_id, webhook_conn_id
    from clinic_pipeline.orchestration.fhir_tasks import fhir_conn_id
    from clinic_pipeline.triggers.redis_streams import RedisStreamEventTrigger

    for name in ("CLINIC_FHIR_CONN", "CLINIC_ALERTS_SMTP_CONN", "CLINIC_ALERTS_WEBHOOK_CONN"):
        monkeypatch.delenv(name, raising=False)
    settings = (REPO / "clinic_pipeline" / "orchestration" / "settings.py").read_text()
    ehr = re.findall(r'get_connection\("(\w+)"\)', settings)
    assert ehr == ["clinic_ehr"]
    redis_conn = RedisStreamEventTrigger(source="monitor").redis_conn_id
    return {*ehr, fhir_conn_id(), smtp_conn_id(), webhook_conn_id(), redis_conn}


def test_connection_ids_are_exactly_those_the_code_asks_for(env, monkeypatch):
    assert set(_connections(env)) == _code_connection_ids(monkeypatch)


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_every_airflow_container_has_the_connections(name):
    service = compose()["services"][name]
    assert {k for k in service["environment"] if k.startswith("AIRFLOW_CONN_")} == {
        f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in _connections(compose()["x-airflow-common"]["environment"])
    }


def test_every_set_connection_parses_with_airflows_connection(env):
    for conn_id, value in _connections(env).items():
        if conn_id in OPTIONAL_CONNECTIONS and value == "":
            continue
        conn = _connection(conn_id, value)
        assert conn.conn_type and conn.host, conn_id
        assert _connection(conn_id, conn.get_uri()).host == conn.host  # survives the SDK's URI round trip


def test_the_event_bus_connection_reaches_the_event_bus_with_its_password(env):
    import redis.asyncio

    model = compose()
    conn = _connection("clinic_events_redis", env["AIRFLOW_CONN_CLINIC_EVENTS_REDIS"])
    # What the trigger does: BaseHook.get_connection(...).get_uri() -> redis.asyncio.Redis.from_url.
    client = redis.asyncio.Redis.from_url(conn.get_uri(), decode_responses=True)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("event-bus", 6379, 0)
    command = model["services"]["event-bus"]["command"]
    assert kwargs["password"] == command[command.index("--requirepass") + 1] == test_env()["EVENT_BUS_PASSWORD"]
    assert "6379" in model["services"]["event-bus"]["ports"][0].rsplit(":", 1)[1]


def test_the_ehr_connection_gives_a_url_sqlalchemy_loads(env):
    import sqlalchemy

    conn = _connection("clinic_ehr", env["AIRFLOW_CONN_CLINIC_EHR"])
    url = sqlalchemy.engine.make_url(conn.get_uri())  # settings.ehr_url() returns get_uri()
    assert url.get_dialect().driver == "psycopg2"
    ehr_db = compose()["services"]["ehr-db"]["environment"]
    assert (url.host, url.port, url.username, url.password, url.database) == (
        "ehr-db",
        5432,
        ehr_db["POSTGRES_USER"],
        ehr_db["POSTGRES_PASSWORD"],
        ehr_db["POSTGRES_DB"],
    )


def test_a_bare_postgresql_uri_would_not_work_which_is_why_compose_says_postgresql_psycopg2():
    import sqlalchemy

    conn = _connection("clinic_ehr", "postgresql://reader:pw@replica:5432/ehr")
    with pytest.raises(sqlalchemy.exc.NoSuchModuleError):
        sqlalchemy.engine.make_url(conn.get_uri()).get_dialect()
    assert "postgresql+psycopg2" in (REPO / "docker-compose.yml").read_text()


def test_the_fhir_connection_points_the_delivery_at_the_hapi_service(env):
    from clinic_pipeline.orchestration.fhir_tasks import target_from_connection

    target = target_from_connection(_connection("clinic_fhir", env["AIRFLOW_CONN_CLINIC_FHIR"]))
    assert target.base_url == "http://hapi:8080/fhir" and target.headers == {}
    hapi = compose()["services"]["hapi"]
    assert hapi["ports"][0].endswith(":8080")  # the container port the base URL names


def test_alert_channels_are_optional_and_empty_means_not_configured(env, monkeypatch):
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend

    for conn_id in OPTIONAL_CONNECTIONS:
        name = f"AIRFLOW_CONN_{conn_id.upper()}"
        assert env[name] == ""
        monkeypatch.setenv(name, env[name])
        assert EnvironmentVariablesBackend().get_connection(conn_id) is None  # the task skips the channel


def test_the_examples_operators_are_shown_work_with_the_code():
    import sqlalchemy

    from clinic_pipeline.alerts.notifiers import SmtpAlertNotifier, WebhookAlertNotifier
    from clinic_pipeline.orchestration.fhir_tasks import target_from_connection

    examples = commented_examples()
    assert set(examples) >= {
        "CONN_CLINIC_EHR",
        "CONN_CLINIC_FHIR",
        "CONN_CLINIC_ALERTS_SMTP",
        "CONN_CLINIC_ALERTS_WEBHOOK",
    }
    ehr = _connection("clinic_ehr", examples["CONN_CLINIC_EHR"])
    assert sqlalchemy.engine.make_url(ehr.get_uri()).get_dialect().driver == "psycopg2"
    fhir = target_from_connection(_connection("clinic_fhir", examples["CONN_CLINIC_FHIR"]))
    assert fhir.base_url == "https://fhir.network.example/fhir" and fhir.headers["Authorization"] == "Bearer TOKEN"
    assert (fhir.timeout_s, fhir.max_attempts) == (30.0, 6)
    smtp = SmtpAlertNotifier()
    smtp._conn = _connection("clinic_alerts_smtp", examples["CONN_CLINIC_ALERTS_SMTP"])
    assert smtp.recipients("C001") == ["safety-officer@network.example"] and smtp.extra["starttls"] is True
    webhook = WebhookAlertNotifier()
    webhook._conn = _connection("clinic_alerts_webhook", examples["CONN_CLINIC_ALERTS_WEBHOOK"])
    assert webhook.url == "https://alerts.network.example/hooks/safety"


def _code_env_vars() -> set[str]:
    pattern = re.compile(r'(?:os\.environ(?:\.get|\.setdefault)?[\(\[]|os\.getenv\()\s*"([A-Z][A-Z0-9_]*)"')
    found = set()
    for folder in CODE_DIRS:
        for path in (REPO / folder).rglob("*.py"):
            found |= set(pattern.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_variable_the_code_reads_is_set_or_deliberately_left_to_its_default(env):
    code = _code_env_vars()
    assert {"CLINIC_LAKE", "CLINIC_LANDING", "CLINIC_EVENT_BUS", "CLINIC_SWEEP_CRON"} <= code  # the grep works
    assert code - set(env) == set(LEFT_TO_DEFAULT)
    assert not set(LEFT_TO_DEFAULT) & set(env)


def test_no_clinic_setting_is_set_that_nothing_reads(env):
    assert {name for name in env if name.startswith("CLINIC_")} <= _code_env_vars()


def test_settings_have_values_the_code_accepts(env):
    from airflow.timetables.trigger import CronTriggerTimetable

    from clinic_pipeline.orchestration import settings

    assert (
        env["CLINIC_EVENT_BUS"] == "redis"
        and '"redis"' in (REPO / "clinic_pipeline/orchestration/assets.py").read_text()
    )
    CronTriggerTimetable(env["CLINIC_SWEEP_CRON"], timezone="UTC")  # raises on a bad expression
    assert env["CLINIC_ALERTS_UNKNOWN"] in ("0", "1")
    assert settings.DEFAULT_ROOT  # module importable with the compose environment's names


def test_airflow_options_set_in_compose_exist(env):
    from airflow.configuration import conf

    description = conf.configuration_description
    for name in env:
        match = re.match(r"^AIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)$", name)
        if not match:
            continue
        section, key = (part.lower() for part in match.groups())
        known = key in description.get(section, {}).get("options", {}) or (section, key) in PROVIDER_OPTIONS
        assert known, name


def test_interpolation_variables_named_like_code_settings_keep_their_meaning():
    """A .env variable called like a variable the code reads must be passed through unchanged, never reused
    for something else (CLINIC_FHIR_CONN is a connection *id* to the code: the URI lives in CONN_CLINIC_FHIR)."""
    env = compose()["x-airflow-common"]["environment"]
    raw = (REPO / "docker-compose.yml").read_text()
    for name in variables_used() & _code_env_vars():
        assert re.search(rf"^\s+{name}: \$\{{{name}(:-[^}}]*)?\}}$", raw, flags=re.MULTILINE), name
        assert name in env


def test_every_interpolated_variable_is_documented_in_env_example():
    documented = set(read_env_file()) | set(commented_examples())
    assert variables_used() - documented == set()
    assert set(read_env_file()) - variables_used() == set()  # nothing in the template that compose ignores


def test_connection_values_in_env_example_are_json_or_uri_that_parse():
    for name, value in commented_examples().items():
        if name.startswith("CONN_"):
            conn = _connection(name.lower(), value)
            assert conn.host, name
            if value.startswith("{"):
                json.loads(value)
    # the defaults in the compose file too
    for value in _connections(compose()["x-airflow-common"]["environment"]).values():
        if value and not value.startswith("{"):
            assert urlsplit(value).scheme
