"""Every command docker-compose.yml runs, checked against the code it calls.

Core Airflow commands (services and healthchecks) are parsed with Airflow 3.3.2's own CLI parser from the venv.
`celery worker` and `users create` come from the Celery and FAB providers, which the image installs
(deploy/image/requirements.lock) but the test venv does not: their commands, options and module paths were
read from the wheels of the pinned versions below, and a test fails when the lock moves to other versions so
that the check is redone. The simulator's command is parsed with `clinic-pipeline`'s own parser.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.deploy.compose_model import REPO, command_args, compose, healthcheck_argv, mounts

# Read from apache_airflow_providers_celery-3.26.0 / apache_airflow_providers_fab-3.10.2 (PyPI wheels):
# airflow/providers/celery/cli/definition.py (group "celery", command "worker"),
# airflow/providers/celery/executors/celery_executor.py (module __getattr__ "app"),
# airflow/providers/fab/cli/definition.py (group "users", command "create", the options below),
# airflow/providers/fab/get_provider_info.py (auth manager and its DB manager, migrated by `airflow db migrate`).
PROVIDERS_READ = {"apache-airflow-providers-celery": "3.26.0", "apache-airflow-providers-fab": "3.10.2"}
CELERY_APP_MODULE = "airflow.providers.celery.executors.celery_executor"
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
FAB_USERS_CREATE_OPTIONS = {"--role", "--username", "--password", "--firstname", "--lastname", "--email"}
IMAGE_AIRFLOW_HOME = "/opt/airflow"
DAG_IDS = [
    "fhir_export",
    "ingest_ehr",
    "ingest_epro_questionnaires",
    "ingest_monitor_vitals",
    "safety_review",
]  # the official image's AIRFLOW_HOME (the Dockerfile keeps it)


@pytest.fixture(scope="module")
def model() -> dict:
    return compose()


@pytest.fixture(scope="module")
def airflow_cli():
    from airflow.cli import cli_parser

    return cli_parser.get_parser()


def _parses(parser, argv: list[str]) -> bool:
    try:
        parser.parse_args(argv)
    except SystemExit:
        return False
    return True


def _image_lock() -> dict[str, str]:
    text = (REPO / "deploy" / "image" / "requirements.lock").read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, flags=re.MULTILINE))


@pytest.mark.parametrize(
    "name", ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]
)
def test_core_airflow_service_commands_exist_in_airflow_3_3_2(model, airflow_cli, name):
    argv = command_args(model["services"][name])
    assert _parses(airflow_cli, argv), argv


def test_the_parser_is_not_vacuous(airflow_cli):
    assert not _parses(airflow_cli, ["webserver"])  # Airflow 2's command, gone in 3
    assert not _parses(airflow_cli, ["jobs", "check", "--job-type", "DagFileProcessorJob"])


@pytest.mark.parametrize("name", ["airflow-dag-processor", "airflow-triggerer"])
def test_job_healthchecks_parse(model, airflow_cli, name):
    kind, argv = healthcheck_argv(model["services"][name])
    assert kind == "CMD-SHELL" and argv[:3] == ["airflow", "jobs", "check"]
    assert _parses(airflow_cli, argv[1:]), argv
    assert argv[argv.index("--hostname") + 1] == "${HOSTNAME}"  # `$$` in the file: for the shell, not compose


def test_init_runs_real_commands(model, airflow_cli):
    script = model["services"]["airflow-init"]["command"][1]
    commands = [
        shlex.split(line.split("/entrypoint ", 1)[1]) for line in _joined_lines(script) if "/entrypoint " in line
    ]
    assert [c[:3] for c in commands] == [["airflow", "db", "migrate"], ["airflow", "users", "create"]]
    assert _parses(airflow_cli, commands[0][1:])
    options = {arg for arg in commands[1] if arg.startswith("--")}
    assert options == FAB_USERS_CREATE_OPTIONS
    assert commands[1][commands[1].index("--role") + 1] == "Admin"


def _joined_lines(script: str) -> list[str]:
    return script.replace("\\\n", " ").splitlines()


def test_provider_commands_come_from_the_provider_versions_that_were_read(model):
    lock = _image_lock()
    assert {name: lock.get(name) for name in PROVIDERS_READ} == PROVIDERS_READ
    assert model["services"]["airflow-worker"]["command"] == "celery worker"
    assert model["x-airflow-common"]["environment"]["AIRFLOW__CORE__AUTH_MANAGER"] == FAB_AUTH_MANAGER
    _kind, argv = healthcheck_argv(model["services"]["airflow-worker"])
    assert argv[:3] == ["celery", "--app", f"{CELERY_APP_MODULE}.app"]
    assert argv[3:6] == ["inspect", "ping", "-d"] and argv[6] == "celery@${HOSTNAME}"


def test_the_image_build_imports_every_module_compose_names():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert CELERY_APP_MODULE in dockerfile
    assert FAB_AUTH_MANAGER.rsplit(".", 1)[0] in dockerfile


def test_api_server_healthcheck_hits_an_unauthenticated_route(model):
    from airflow.api_fastapi.core_api.routes.public import public_router

    url = _probe_url(model["services"]["airflow-apiserver"])
    assert url.port == 8080 and model["services"]["airflow-apiserver"]["ports"][0].endswith(":8080")
    route = next(r for r in public_router.routes if r.path == url.path)
    assert "GET" in route.methods and not route.dependant.dependencies  # no auth dependency
    dags = next(r for r in public_router.routes if r.path == "/api/v2/dags")
    assert dags.dependant.dependencies  # ... unlike an authenticated route


def test_scheduler_healthcheck_hits_the_scheduler_health_server(model):
    from airflow.configuration import conf
    from airflow.utils import scheduler_health

    url = _probe_url(model["services"]["airflow-scheduler"])
    assert url.port == conf.getint("scheduler", "scheduler_health_check_server_port")
    assert f'self.path == "{url.path}"' in Path(scheduler_health.__file__).read_text()
    assert model["x-airflow-common"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"


def _probe_url(service: dict):
    _kind, argv = healthcheck_argv(service)
    assert argv[:2] == ["python", "-c"]
    return urlsplit(re.search(r"urlopen\('([^']+)'", argv[2]).group(1))


def test_dags_and_plugins_are_mounted_where_airflow_looks(model):
    from airflow.configuration import conf

    options = conf.configuration_description["core"]["options"]
    assert options["dags_folder"]["default"] == "{AIRFLOW_HOME}/dags"
    assert options["plugins_folder"]["default"] == "{AIRFLOW_HOME}/plugins"
    assert not re.search(r"^ENV\s+AIRFLOW_HOME", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE)
    by_target = {m.target: m.source for m in mounts(model["x-airflow-common"])}
    assert by_target[f"{IMAGE_AIRFLOW_HOME}/dags"] == "./dags"
    assert by_target[f"{IMAGE_AIRFLOW_HOME}/plugins"] == "./plugins"


def test_the_mounted_dags_are_the_pipeline_and_the_plugin_is_there():
    dag_ids = sorted(
        dag_id for path in (REPO / "dags").glob("*.py") for dag_id in re.findall(r'dag_id="([^"]+)"', path.read_text())
    )
    assert dag_ids == [
        "fhir_export",
        "ingest_ehr",
        "ingest_epro_questionnaires",
        "ingest_monitor_vitals",
        "safety_review",
    ]
    plugin = (REPO / "plugins" / "clinic_dashboards.py").read_text()
    assert re.search(r"class \w+\(AirflowPlugin\)", plugin)


def test_the_simulator_command_is_a_valid_clinic_pipeline_command_wired_to_this_topology(model):
    from clinic_pipeline.cli import build_parser
    from clinic_pipeline.triggers.redis_streams import RedisStreamEventTrigger

    service = model["services"]["clinic-simulator"]
    assert service["entrypoint"] == ["clinic-pipeline"]
    assert 'clinic-pipeline = "clinic_pipeline.cli:main"' in (REPO / "pyproject.toml").read_text()
    args = build_parser().parse_args(command_args(service))
    env = service["environment"]
    assert args.command == "simulate" and str(args.out) == env["CLINIC_LANDING"]
    assert args.redis_stream == RedisStreamEventTrigger(source="ehr").stream  # announced where it is read
    events, announced = urlsplit(env["AIRFLOW_CONN_CLINIC_EVENTS_REDIS"]), urlsplit(args.redis_url)
    assert (announced.hostname, announced.port, announced.path, announced.password) == (
        events.hostname,
        events.port,
        events.path,
        events.password,
    )
    assert args.ehr_url == env["AIRFLOW_CONN_CLINIC_EHR"]  # the EHR it writes is the one ingest reads
    assert not str(args.truth_out).startswith(env["CLINIC_LANDING"])  # ground truth never in the landing zone
