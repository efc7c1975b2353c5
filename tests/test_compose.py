"""Static checks of the production topology (docker-compose.yml, Dockerfile): no Docker engine needed."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"]
AIRFLOW_SERVICES += ["airflow-triggerer", "airflow-worker"]
COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",  # runs the AssetWatcher event triggers: no triggerer, no events
    "airflow-worker": "celery worker",
}
MOUNT_TARGETS = {"/opt/airflow/dags", "/opt/airflow/expectations", "/data/lake", "/data/landing"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _default(value: str) -> str:
    """What compose substitutes for `${VAR:-default}` when VAR is unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_all_services_exist(compose):
    assert {"postgres", "redis", "ehr-db", *AIRFLOW_SERVICES} <= set(compose["services"])


def test_airflow_services_share_the_common_image_and_env(compose):
    common = compose["x-airflow-common"]
    assert common["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "${" in common["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]  # from the environment
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        assert (service["image"], service["build"]) == (common["image"], common["build"]), name
        assert common["environment"].items() <= service["environment"].items(), name


@pytest.mark.parametrize(("name", "command"), COMMANDS.items())
def test_each_airflow_component_runs_its_command(compose, name, command):
    assert compose["services"][name]["command"] == command
    assert compose["services"][name]["healthcheck"]["test"], name


@pytest.mark.parametrize(("name", "probe"), [("postgres", "pg_isready"), ("redis", "redis-cli")])
def test_backing_services_have_healthchecks(compose, name, probe):
    assert probe in compose["services"][name]["healthcheck"]["test"]


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_wait_for_healthy_postgres_and_redis(compose, name):
    depends_on = compose["services"][name]["depends_on"]
    for backing in ("postgres", "redis"):
        assert depends_on[backing]["condition"] == "service_healthy", (name, backing)


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_dags_expectations_and_lake_are_mounted(compose, name):
    mounts = dict(volume.rsplit(":", 1)[::-1] for volume in compose["services"][name]["volumes"])
    assert set(mounts) >= MOUNT_TARGETS, name
    for target in ("/opt/airflow/dags", "/opt/airflow/expectations"):
        assert (REPO / mounts[target]).is_dir(), mounts[target]


def test_no_image_floats_on_latest(compose):
    for name, service in compose["services"].items():
        image = _default(service["image"])
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{name}: {image}"


def test_dockerfile_pins_airflow_3_3_2_on_python_3_11():
    from_lines = re.findall(r"^FROM\s+(\S+)", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert from_lines == ["apache/airflow:3.3.2-python3.11"]  # the lock targets Python 3.11
