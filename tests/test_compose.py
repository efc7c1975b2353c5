"""Static checks of the production topology (docker-compose.yml): the services, their images, healthchecks,
dependencies and mounts. No Docker engine runs where these tests do, so nothing here starts a container: the
file is read as Compose reads it (tests/deploy/compose_model.py: YAML, merge keys, interpolation from
deploy/env.example). The commands, connections, environment, image, nginx and HAPI checks are in tests/deploy/.
"""

from __future__ import annotations

import re

import pytest

from tests.deploy.compose_model import (
    AIRFLOW_SERVICES,
    ONE_SHOT,
    REPO,
    InterpolationError,
    compose,
    healthcheck_argv,
    mounts,
    read_env_file,
)

COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",  # runs the AssetWatcher event triggers: no triggerer, no events
    "airflow-worker": "celery worker",
}
# The programs each healthcheck runs, and why the image has them.
PROBES = {
    "postgres": "pg_isready",  # postgres image
    "hapi-db": "pg_isready",
    "ehr-db": "pg_isready",
    "redis": "redis-cli",  # redis image
    "event-bus": "redis-cli",
    "hapi": "java",  # distroless Java image: java and nothing else
    "dashboard": "wget",  # nginx:*-alpine: busybox wget (no curl)
    "airflow-apiserver": "python",  # the slim Airflow image may lack curl; python is always there
    "airflow-scheduler": "python",
    "airflow-dag-processor": "airflow",
    "airflow-triggerer": "airflow",
    "airflow-worker": "celery",  # from the Celery provider in deploy/image/requirements.lock
}
LAKE_TARGET, LANDING_TARGET = "/data/lake", "/data/landing"


@pytest.fixture(scope="module")
def model() -> dict:
    return compose()


def test_all_services_exist(model):
    expected = {"postgres", "redis", "event-bus", "hapi", "hapi-db", "dashboard", *AIRFLOW_SERVICES}
    expected |= {"airflow-cli", "ehr-db", "clinic-simulator"}
    assert set(model["services"]) == expected


def test_stand_ins_for_clinic_systems_are_only_in_the_demo_profile(model):
    for name in ("ehr-db", "clinic-simulator"):
        assert model["services"][name]["profiles"] == ["demo"], name
    assert model["services"]["airflow-cli"]["profiles"] == ["debug"]
    default = {name for name, service in model["services"].items() if "profiles" not in service}
    assert "ehr-db" not in default and not any("ehr-db" in model["services"][s].get("depends_on", {}) for s in default)


def test_airflow_services_share_the_common_image_and_env(model):
    common = model["x-airflow-common"]
    assert common["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for name in (*AIRFLOW_SERVICES, "airflow-cli", "clinic-simulator"):
        service = model["services"][name]
        assert (service["image"], service["build"]) == (common["image"], common["build"]), name
        assert common["environment"].items() <= service["environment"].items(), name


def test_every_image_is_pinned_to_a_version(model):
    """A tag with at least major.minor (`postgres:16.15`, not `postgres:16` or `latest`); no digest needed."""
    for name, service in model["services"].items():
        image = service["image"]
        tag = image.rpartition("/")[2].partition(":")[2]
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image}"


def test_the_pipeline_image_tag_is_the_project_version(model):
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert model["x-airflow-common"]["image"] == f"clinic-pipeline:{version}"


@pytest.mark.parametrize(("name", "command"), COMMANDS.items())
def test_each_airflow_component_runs_its_command(model, name, command):
    assert model["services"][name]["command"] == command


@pytest.mark.parametrize("name", sorted(PROBES))
def test_every_long_running_service_has_a_healthcheck_with_a_probe_its_image_has(model, name):
    service = model["services"][name]
    assert service["restart"] == "always", name
    _kind, argv = healthcheck_argv(service)
    assert argv[0] == PROBES[name], (name, argv)
    for key in ("interval", "retries"):
        assert key in service["healthcheck"], (name, key)


def test_the_services_without_a_healthcheck_are_the_one_shots(model):
    without = {name for name, service in model["services"].items() if "healthcheck" not in service}
    assert without == ONE_SHOT
    for name in ONE_SHOT:
        assert model["services"][name].get("restart", "no") == "no", name


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_wait_for_healthy_postgres_and_redis(model, name):
    depends_on = model["services"][name]["depends_on"]
    for backing in ("postgres", "redis"):
        assert depends_on[backing]["condition"] == "service_healthy", (name, backing)


def test_long_running_airflow_services_wait_for_init_and_the_triggerer_for_the_event_bus(model):
    for name in set(AIRFLOW_SERVICES) - {"airflow-init"}:
        assert model["services"][name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert model["services"]["airflow-triggerer"]["depends_on"]["event-bus"]["condition"] == "service_healthy"
    assert model["services"]["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert model["services"]["hapi"]["depends_on"]["hapi-db"]["condition"] == "service_healthy"


def test_depends_on_names_existing_services(model):
    for name, service in model["services"].items():
        assert set(service.get("depends_on", {})) <= set(model["services"]), name


@pytest.mark.parametrize("name", (*AIRFLOW_SERVICES, "clinic-simulator"))
def test_the_lake_and_landing_zone_are_mounted_identically_in_every_airflow_container(model, name):
    by_target = {m.target: m for m in mounts(model["services"][name])}
    env = model["services"][name]["environment"]
    assert (env["CLINIC_LAKE"], env["CLINIC_LANDING"]) == (LAKE_TARGET, LANDING_TARGET)
    assert by_target[LAKE_TARGET].source == "./data/lake"
    assert by_target[LANDING_TARGET].source == "./data/landing"
    assert not by_target[LAKE_TARGET].read_only
    for target in ("/opt/airflow/dags", "/opt/airflow/plugins"):
        assert by_target[target].read_only, target


def test_lake_and_landing_folders_follow_the_env_settings():
    moved = compose(read_env_file() | _filled() | {"CLINIC_LAKE_DIR": "/srv/lake", "CLINIC_LANDING_DIR": "/srv/in"})
    for name in AIRFLOW_SERVICES:
        by_target = {m.target: m.source for m in mounts(moved["services"][name])}
        assert (by_target[LAKE_TARGET], by_target[LANDING_TARGET]) == ("/srv/lake", "/srv/in")
    assert mounts(moved["services"]["dashboard"])[1].source == "/srv/lake/dashboards"


def test_every_bind_mounted_host_path_exists_or_is_made_by_the_documented_setup(model):
    header = (REPO / "docker-compose.yml").read_text().split("\n---\n", 1)[0]
    made_by_setup = {"./data/lake", "./data/landing", "./data/lake/dashboards"}
    for folder in ("data/lake", "data/landing"):
        assert folder in header  # `mkdir -p data/lake data/landing`
    for name, service in model["services"].items():
        for mount in mounts(service):
            if not mount.is_bind:
                assert mount.source in model["volumes"], (name, mount)
                continue
            if mount.source in made_by_setup:
                continue
            assert (REPO / mount.source).exists(), (name, mount.source)


def test_the_dashboard_secret_is_created_by_the_documented_setup(model):
    header = (REPO / "docker-compose.yml").read_text().split("\n---\n", 1)[0]
    secret = model["secrets"]["dashboard_htpasswd"]["file"]
    assert secret == "./deploy/secrets/dashboard.htpasswd"
    assert secret.removeprefix("./") in header
    # Never committed: deploy/secrets/ ignores everything but its README and .gitignore.
    lines = (REPO / "deploy" / "secrets" / ".gitignore").read_text().splitlines()
    ignored = [line for line in lines if line and not line.startswith("#")]
    assert ignored[0] == "*" and set(ignored[1:]) == {"!.gitignore", "!README.md"}


def test_published_ports_do_not_collide_and_internal_services_stay_internal(model):
    published = []
    for name, service in model["services"].items():
        for spec in service.get("ports", []):
            *host, _container = str(spec).split(":")
            published.append((host[-1], name))
    ports = [port for port, _ in published]
    assert len(ports) == len(set(ports)), published
    for internal in ("postgres", "redis", "hapi-db", "ehr-db"):
        assert "ports" not in model["services"][internal], internal
    # HAPI (no auth of its own) and the event bus listen on loopback unless the operator decides otherwise.
    assert model["services"]["hapi"]["ports"][0].startswith("127.0.0.1:")
    assert model["services"]["event-bus"]["ports"][0].startswith("127.0.0.1:")


def test_required_secrets_stop_compose_when_missing():
    blank = read_env_file()  # env.example as shipped: the secrets are empty
    with pytest.raises(InterpolationError, match=r"AIRFLOW_DB_PASSWORD|AIRFLOW_FERNET_KEY|AIRFLOW_JWT_SECRET"):
        compose(blank)
    for name in _filled():
        with pytest.raises(InterpolationError, match=name):
            compose(read_env_file() | {k: v for k, v in _filled().items() if k != name})


def test_no_secret_has_a_default_in_the_compose_file():
    text = (REPO / "docker-compose.yml").read_text()
    for name in _filled():
        for match in re.finditer(r"\$\{" + name + r"(:?[-?+])?", text):
            assert match.group(1) in (":?",), (name, match.group(0))


def _filled() -> dict[str, str]:
    from tests.deploy.compose_model import FILLED

    return dict(FILLED)
