"""The image every Airflow service runs (Dockerfile, .dockerignore, deploy/image/requirements.lock), statically.

No Docker engine here: nothing is built. What is checked is what decides whether a build can work and whether
the image holds what the tasks need: the base image is pinned; the image lock is hash-pinned, covers the
project's runtime dependencies and the providers the compose file uses, and agrees with requirements.lock (the
versions the tests run on) except for the documented divergences; every file the Dockerfile copies exists and
passes .dockerignore; the project is installed where its code looks for its files.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib

import pytest

from tests.deploy.compose_model import REPO, compose, mounts

DOCKERFILE = (REPO / "Dockerfile").read_text()
IMAGE_LOCK = REPO / "deploy" / "image" / "requirements.lock"
DEV_LOCK = REPO / "requirements.lock"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path) -> dict[str, str]:
    text = path.read_text()
    return {_normalize(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, flags=re.MULTILINE)}


def _requirements(path) -> list[tuple[str, list[str]]]:
    """(requirement line, its hashes) for every pinned requirement of a pip requirements file."""
    entries: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        if re.match(r"^[A-Za-z0-9_.-]+==", line):
            entries.append((line, []))
        elif "--hash=sha256:" in line and entries:
            entries[-1][1].append(line.strip().split("sha256:")[1].rstrip(" \\"))
    return entries


def _diverging() -> set[str]:
    script = (REPO / "deploy" / "image" / "lock.sh").read_text()
    pattern = re.search(r"DIVERGE='\^\(([^)]*)\)=='", script).group(1)
    return {_normalize(n) for n in pattern.split("|")}


def _arg(name: str) -> str:
    return re.search(rf"^ARG {name}=(\S+)", DOCKERFILE, flags=re.MULTILINE).group(1)


def test_base_image_is_pinned_to_airflow_3_3_2_on_python_3_11():
    assert re.findall(r"^FROM\s+(\S+)", DOCKERFILE, flags=re.MULTILINE) == ["apache/airflow:slim-3.3.2-python3.11"]
    assert _pins(IMAGE_LOCK)["apache-airflow"] == "3.3.2" == _pins(DEV_LOCK)["apache-airflow"]
    assert "--python-version 3.11" in DEV_LOCK.read_text().split("\n", 3)[1]
    assert "--python-version 3.11" in (REPO / "deploy" / "image" / "lock.sh").read_text()


def test_every_requirement_of_the_image_lock_is_hash_pinned():
    entries = _requirements(IMAGE_LOCK)
    assert len(entries) > 150
    for line, hashes in entries:
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), line
    assert re.search(
        r"uv pip install --no-cache --require-hashes -r \$\{SRC\}/deploy/image/requirements.lock", DOCKERFILE
    )


def test_the_image_lock_covers_the_projects_runtime_dependencies_and_the_providers_compose_uses():
    pins = _pins(IMAGE_LOCK)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = _normalize(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))
        assert name in pins, requirement
    for needed in ("apache-airflow-providers-celery", "apache-airflow-providers-fab", "celery", "psycopg2-binary"):
        assert needed in pins, needed
    for dev_only in ("pytest", "ruff", "playwright"):
        assert dev_only not in pins, dev_only  # the dev extra stays out of the image
    requested = re.findall(r"^([A-Za-z0-9_.-]+)", (REPO / "deploy" / "image" / "requirements.in").read_text(), re.M)
    assert {_normalize(n) for n in requested} <= set(pins)


def test_the_image_runs_the_versions_the_tests_run_on_except_the_documented_divergences():
    image, dev = _pins(IMAGE_LOCK), _pins(DEV_LOCK)
    differing = {name for name in set(image) & set(dev) if image[name] != dev[name]}
    assert differing == _diverging(), {n: (dev.get(n), image.get(n)) for n in differing | _diverging()}


def test_the_image_lock_is_universal_so_the_image_builds_on_arm_hosts_too():
    header = IMAGE_LOCK.read_text().split("\n", 2)[:2]
    assert "universal" in " ".join(header) and "deploy/image/lock.sh" in header[0]
    assert "--universal" in (REPO / "deploy" / "image" / "lock.sh").read_text()
    # numpy publishes wheels per platform: the lock must hash the aarch64 ones as well as the x86_64 ones
    numpy = next(hashes for line, hashes in _requirements(IMAGE_LOCK) if line.startswith("numpy=="))
    assert len(numpy) >= 10


def _copies() -> list[tuple[list[str], str]]:
    copies = []
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY "):
            parts = [p for p in line.split()[1:] if not p.startswith("--")]
            copies.append((parts[:-1], parts[-1]))
    return copies


def _ignored(path: str) -> bool:
    """.dockerignore semantics (last matching pattern wins, `!` re-includes; a folder pattern covers its tree)."""
    ignored = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        candidates = [pattern, pattern.removeprefix("**/")]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(fnmatch.fnmatchcase(prefix, c) for c in candidates for prefix in prefixes)
        if pattern.startswith("**/"):
            hit = hit or any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        if hit:
            ignored = not negate
    return ignored


def test_every_copied_file_exists_and_is_in_the_build_context():
    sources = [source.rstrip("/") for sources, _ in _copies() for source in sources]
    assert "deploy/image/requirements.lock" in sources and "expectations" in sources
    for source in sources:
        assert (REPO / source).exists(), source
        files = [p for p in (REPO / source).rglob("*") if p.is_file()] if (REPO / source).is_dir() else [REPO / source]
        kept = [p for p in files if not _ignored(str(p.relative_to(REPO)))]
        assert kept, source
        if source.endswith(".py") or (REPO / source).is_dir():
            assert any(p.suffix in (".py", ".json", ".yml") for p in kept), source


def test_the_build_context_leaves_out_data_secrets_and_the_environment():
    for path in (
        "data/lake/staged/x.parquet",
        "data/landing/ehr.sqlite",
        "lake/raw/x",
        "landing/x",
        ".env",
        "deploy/secrets/dashboard.htpasswd",
        ".venv/bin/python",
        ".git/HEAD",
        "tests/fhir_server/node_modules/x.js",
        "clinic_pipeline/__pycache__/cli.cpython-311.pyc",
        "expectations/gx/uncommitted/x.yml",
        "build/bench/bench.json",
        "network-truth.json",
    ):
        assert _ignored(path), path
    for path in ("pyproject.toml", "README.md", "clinic_pipeline/cli.py", "expectations/gx/great_expectations.yml"):
        assert not _ignored(path), path


def test_the_project_is_installed_editable_where_its_code_looks_for_the_expectation_suites():
    from clinic_pipeline.quality.suite_rules import EXPECTATIONS_ROOT

    source_root = _arg("SRC")
    assert EXPECTATIONS_ROOT == REPO / "expectations"  # <source root>/expectations
    assert re.search(r"uv pip install [^\n]*--no-build-isolation --editable \$\{SRC\}", DOCKERFILE)
    assert ("expectations/", "${SRC}/expectations/") in [(s[0], d) for s, d in _copies()]
    by_target = {m.target: m.source for m in mounts(compose()["x-airflow-common"])}
    assert by_target[f"{source_root}/expectations"] == "./expectations"
    assert "setuptools" in _pins(IMAGE_LOCK)  # the build backend pyproject.toml names, for --no-build-isolation
    assert 'requires = ["setuptools' in (REPO / "pyproject.toml").read_text()


def test_the_image_services_write_where_they_may():
    """The services run as AIRFLOW_UID with group 0: AIRFLOW_HOME and its folders must be group-writable."""
    assert "chown -R airflow:0 /opt/airflow" in DOCKERFILE and "chmod -R g+rwX /opt/airflow" in DOCKERFILE
    assert DOCKERFILE.rstrip().splitlines()[-1].strip().endswith("> /dev/null")  # the smoke test is last
    users = re.findall(r"^USER (\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert users[-1] == "airflow"  # never left running as root


@pytest.mark.parametrize(
    "module",
    ["clinic_pipeline.orchestration.assets", "clinic_pipeline.triggers.redis_streams", "clinic_pipeline.cli"],
)
def test_the_smoke_imports_of_the_build_are_real_modules(module):
    import importlib

    assert module in DOCKERFILE
    importlib.import_module(module)
