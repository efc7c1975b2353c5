"""The HAPI FHIR delivery target of docker-compose.yml: its settings file and its healthcheck probe.

HAPI itself cannot run here (no Docker engine). Its configuration is checked against the compose file (database,
password, mounts, port) and against what the delivery code needs; the healthcheck probe, a Java class because
the image is distroless, is run for real with the local Java runtime against a local HTTP server.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.compose_model import REPO, compose, healthcheck_argv, mounts

HAPI_DIR = REPO / "deploy" / "hapi"
PROBE_DIR = HAPI_DIR / "healthcheck"


@pytest.fixture(scope="module")
def settings() -> dict:
    return yaml.safe_load((HAPI_DIR / "application.yaml").read_text())


@pytest.fixture(scope="module")
def hapi() -> dict:
    return compose()["services"]["hapi"]


def test_the_image_is_pinned_and_the_settings_file_is_loaded_from_its_mount(hapi):
    assert hapi["image"].startswith("hapiproject/hapi:v") and hapi["image"] != "hapiproject/hapi:latest"
    by_target = {m.target: m for m in mounts(hapi)}
    location = hapi["environment"]["SPRING_CONFIG_ADDITIONAL_LOCATION"].removeprefix("file:")
    assert by_target[location].source == "./deploy/hapi/application.yaml" and by_target[location].read_only


def test_hapi_uses_its_own_database_with_the_compose_credentials(settings, hapi):
    datasource = settings["spring"]["datasource"]
    hapi_db = compose()["services"]["hapi-db"]["environment"]
    url = urlsplit(datasource["url"].removeprefix("jdbc:"))
    assert (url.scheme, url.hostname, url.port, url.path) == (
        "postgresql",
        "hapi-db",
        5432,
        f"/{hapi_db['POSTGRES_DB']}",
    )
    assert datasource["username"] == hapi_db["POSTGRES_USER"]
    assert datasource["password"] == "${HAPI_DB_PASSWORD}"  # a Spring placeholder, never the secret itself
    assert hapi["environment"]["HAPI_DB_PASSWORD"] == hapi_db["POSTGRES_PASSWORD"]
    assert "Postgres" in settings["spring"]["jpa"]["properties"]["hibernate.dialect"]
    assert "hapi-db" in hapi["depends_on"]


def test_hapi_accepts_what_the_delivery_sends(settings):
    from clinic_pipeline.fhir.delivery import BY_IDENTIFIER

    fhir = settings["hapi"]["fhir"]
    assert fhir["fhir_version"] == "R4"
    # AdverseEvent and Provenance go as PUT <Type>/<deterministic id>: client-assigned, never numeric ids.
    assert {"AdverseEvent", "Provenance"}.isdisjoint(BY_IDENTIFIER)
    assert fhir["client_id_strategy"] == "ALPHANUMERIC"


def test_the_healthcheck_probes_the_exposed_actuator_on_the_container_port(settings, hapi):
    _kind, argv = healthcheck_argv(hapi)
    assert argv[0] == "java"
    classpath = argv[argv.index("-cp") + 1]
    assert argv[argv.index("-cp") + 2] == "HealthCheck"
    url = urlsplit(argv[-1])
    assert (url.hostname, url.port, url.path) == ("localhost", 8080, "/actuator/health")
    assert hapi["ports"][0].endswith(":8080")
    assert "health" in settings["management"]["endpoints"]["web"]["exposure"]["include"].split(",")
    by_target = {m.target: m for m in mounts(hapi)}
    assert by_target[classpath].source == "./deploy/hapi/healthcheck" and by_target[classpath].read_only
    assert (PROBE_DIR / "HealthCheck.class").is_file()


def test_the_probe_is_java_17_bytecode():
    header = (PROBE_DIR / "HealthCheck.class").read_bytes()[:8]
    assert header[:4] == b"\xca\xfe\xba\xbe"
    assert int.from_bytes(header[6:8], "big") == 61  # Java 17: runs on the image's 17 or 21 runtime


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        body = b'{"status":"UP"}' if self.status == 200 else b'{"status":"DOWN"}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _probe(url: str) -> subprocess.CompletedProcess:
    _kind, argv = healthcheck_argv(compose()["services"]["hapi"])
    argv = [*argv[:-1], url]
    argv[argv.index("-cp") + 1] = str(PROBE_DIR)  # the mount's source
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime on this machine")
@pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (503, 1)])
def test_the_probe_passes_on_up_and_fails_on_down(status, exit_code):
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = _probe(f"http://127.0.0.1:{server.server_port}/actuator/health")
    finally:
        server.shutdown()
    assert result.returncode == exit_code, (result.stdout, result.stderr)


@pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime on this machine")
def test_the_probe_fails_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _probe(f"http://127.0.0.1:{port}/actuator/health")
    assert result.returncode == 1 and "unhealthy" in result.stderr


def _javac_17() -> bool:
    if shutil.which("javac") is None:
        return False
    version = subprocess.run(["javac", "-version"], check=False, capture_output=True, text=True).stdout
    return version.startswith("javac 17.")


@pytest.mark.skipif(not _javac_17(), reason="javac 17 is needed to rebuild the probe byte for byte")
def test_the_committed_class_is_built_from_the_committed_source(tmp_path: Path):
    subprocess.run(
        ["javac", "--release", "17", "-g:none", "-d", str(tmp_path), str(PROBE_DIR / "HealthCheck.java")],
        check=True,
        timeout=120,
    )
    assert (tmp_path / "HealthCheck.class").read_bytes() == (PROBE_DIR / "HealthCheck.class").read_bytes()
