"""A real FHIR R4 server, an independent validator and a fault-injecting proxy for the tests (see README.md).

Other test packages import what they need:

    from tests.fhir_server.fixtures import fhir_server, fault_proxy  # noqa: F401 (pytest fixtures)
    from tests.fhir_server.fixtures import run_independent_validator, search_count
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.fhir_server.fault_proxy import FaultProxy

HERE = Path(__file__).resolve().parent
STARTUP_TIMEOUT = 60.0  # loading the R4 definitions takes ~1.5 s; generous for a loaded CI machine
FHIR_JSON = "application/fhir+json"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the FHIR test server needs Node.js >= 20.19")
    if not (HERE / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.fail(f"{HERE / 'node_modules'} is missing: run `make test` (it runs `npm ci` in tests/fhir_server)")
    return node


class FhirServer:
    """`node server.mjs` on a free port; `base_url` is like http://127.0.0.1:PORT/fhir/R4."""

    def __init__(self, *, validate: bool = False) -> None:
        self.validate = validate
        self.base_url = ""
        self._process: subprocess.Popen[str] | None = None
        self._stderr: list[str] = []

    def start(self) -> FhirServer:
        env = {**os.environ, "VALIDATE": "1" if self.validate else "0"}
        process = subprocess.Popen(
            [_node(), "server.mjs", "0"],
            cwd=HERE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._process = process
        assert process.stdout is not None and process.stderr is not None
        # Drained all along, so that a chatty server never blocks on a full pipe; kept for failure messages.
        threading.Thread(target=self._stderr.extend, args=(process.stderr,), daemon=True).start()
        # readline() blocks; a thread lets the wait time out if node hangs before printing READY.
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(STARTUP_TIMEOUT)
        line = ready[0] if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the FHIR server did not start (got {line!r}); its stderr:\n{self.stderr()}")
        self.base_url = line.split()[1]
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def reset(self) -> None:
        """Empties the server's repository (cheap: one request)."""
        request = urllib.request.Request(self.base_url.rsplit("/fhir/", 1)[0] + "/admin/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stderr(self) -> str:
        return "".join(self._stderr)


def fhir_request(
    method: str, url: str, body: Any = None, *, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, dict[str, Any] | None]:
    """One FHIR call; returns (status, parsed JSON body or None). HTTP error statuses are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Accept": FHIR_JSON, **({"Content-Type": FHIR_JSON} if data else {}), **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, payload = err.code, err.read()
    return status, (json.loads(payload) if payload.strip() else None)


def search_count(base_url: str, query: str, **params: str) -> int:
    """The number of matches of `Type?already-encoded-query` and/or `params` (values encoded here, so that
    `identifier="sys|a+b"` keeps its plus sign)."""
    encoded = urlencode(params, quote_via=quote, safe="")
    separator = "&" if "?" in query else "?"
    url = f"{base_url}/{query}{separator}{encoded}{'&' if encoded else ''}_summary=count"
    status, bundle = fhir_request("GET", url)
    if status != 200 or bundle is None:
        raise AssertionError(f"search {url} failed: {status} {bundle}")
    return int(bundle["total"])


def run_independent_validator(paths: list[Path | str] | Path | str, *, timeout: float = 900.0) -> dict[str, Any]:
    """Validates NDJSON files (or .json resources/Bundles) with Medplum against the R4 base definitions and
    profiles (validate.mjs). Returns its report: {"checked", "by_type", "unresolved_profiles", "problems"}."""
    files = [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    result = subprocess.run(
        [_node(), str(HERE / "validate.mjs"), *files], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise RuntimeError(f"validate.mjs failed ({result.returncode}):\n{result.stderr}")
    return json.loads(result.stdout)


def errors(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The error-severity problems of a validator report."""
    return [p for p in report["problems"] if p["severity"] in ("error", "fatal")]


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[FhirServer]:
    """One FHIR server for the session; call `.reset()` for an empty repository."""
    server = FhirServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def validating_fhir_server() -> Iterator[FhirServer]:
    """A FHIR server that rejects (400) every written resource the independent validator finds errors in."""
    server = FhirServer(validate=True).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_fhir_server(fhir_server: FhirServer) -> FhirServer:
    """The session's FHIR server, emptied for this test."""
    fhir_server.reset()
    return fhir_server


@pytest.fixture
def fault_proxy(fhir_server: FhirServer) -> Iterator[FaultProxy]:
    """A started FaultProxy in front of the session's FHIR server (`.base_url`); stopped after the test."""
    proxy = FaultProxy(fhir_server.base_url, hold_seconds=10.0)
    proxy.start()
    yield proxy
    proxy.stop()
