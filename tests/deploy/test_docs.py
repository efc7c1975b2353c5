"""The operator documentation (docs/architecture.md, operations.md, connecting-clinic-systems.md, scaling.md) against
the code: links resolve, every command shown parses with the parser of the program it calls, and every DAG,
task, connection and environment variable it names exists. Documentation that drifts from the code is caught
here, not by an operator at 3 a.m.
"""

from __future__ import annotations

import re
import shlex

import pytest

from tests.deploy.compose_model import REPO, commented_examples, compose, read_env_file, variables_used

DOCS = ["architecture.md", "operations.md", "connecting-clinic-systems.md", "scaling.md"]
# Airflow commands that come from providers the image installs but the test venv does not (tests/deploy/
# test_commands.py checks them against the provider versions), and the image entrypoint's pass-through.
NOT_CORE_AIRFLOW = {"users", "celery", "python", "bash"}
# Names in the docs that are neither settings of this repository nor Airflow options.
OTHER_NAMES = {"AIRFLOW_HOME", "AWS_", "REDISCLI_AUTH"}


def _text(name: str) -> str:
    return (REPO / "docs" / name).read_text(encoding="utf-8")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def _anchors(path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)}


def _code_lines(text: str) -> list[str]:
    """Shell lines of the fenced shell code blocks (bash, sh or unnamed), continuations joined."""
    lines, block, language = [], None, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if block is None:
                block, language = [], line.lstrip()[3:].strip()
                continue
            if language in ("", "bash", "sh"):
                joined = "\n".join(block).replace("\\\n", " ")
                lines += [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            block = None
        elif block is not None:
            block.append(line)
    return lines


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_and_anchors_resolve(doc):
    for target in re.findall(r"\]\(([^)\s]+)\)", _text(doc)):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path_part, _, anchor = target.partition("#")
        path = (REPO / "docs" / path_part).resolve() if path_part else REPO / "docs" / doc
        assert path.exists(), (doc, target)
        if anchor:
            assert anchor in _anchors(path), (doc, target)


def _clinic_pipeline_argv(line: str) -> list[str] | None:
    argv = shlex.split(line.split(" > ", 1)[0].split(" | ", 1)[0])
    for i, word in enumerate(argv):
        if word.endswith("clinic-pipeline") and (i == 0 or argv[i - 1] == "--entrypoint"):
            rest = argv[i + 1 :]
            if i > 0:  # docker compose run --rm --entrypoint clinic-pipeline <service> <args>
                rest = rest[1:]
            return rest
    return None


def _airflow_argv(line: str) -> list[str] | None:
    for prefix in ("docker compose run --rm airflow-cli ", "airflow "):
        if line.startswith(prefix):
            return shlex.split(line.removeprefix(prefix))
    return None


@pytest.mark.parametrize("doc", DOCS)
def test_every_clinic_pipeline_command_shown_parses(doc):
    """Whole commands (code blocks) parse; commands named in the text exist with the options they show."""
    import argparse

    from clinic_pipeline.cli import build_parser

    for argv in (a for line in _code_lines(_text(doc)) if (a := _clinic_pipeline_argv(line)) is not None):
        build_parser().parse_args(argv)  # SystemExit (a failure) on an unknown command or option
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for mention in re.findall(r"`(?:\.venv/bin/)?clinic-pipeline ([^`]+)`", _text(doc)):
        command, *rest = mention.split()
        if command == "...":
            continue
        assert command in subparsers.choices, (doc, mention)
        options = {o for action in subparsers.choices[command]._actions for o in action.option_strings}
        assert {word for word in rest if word.startswith("--")} <= options, (doc, mention)


@pytest.mark.parametrize("doc", DOCS)
def test_every_airflow_command_shown_parses(doc):
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()
    texts = _code_lines(_text(doc)) + re.findall(r"`(docker compose run --rm airflow-cli [^`]+)`", _text(doc))
    for line in texts:
        argv = _airflow_argv(line)
        if not argv or argv[0] in NOT_CORE_AIRFLOW or argv[0].startswith(("-", "<")):
            continue
        argv = [a for a in argv if a != "..."]
        parser.parse_args(argv)


def test_the_operations_doc_shows_the_everyday_commands():
    text = _text("operations.md")
    for needed in ("replay-quarantine", "dags trigger", "tasks clear", "rotate-fernet-key", "--scale airflow-worker"):
        assert needed in text or needed in _text("scaling.md"), needed


def _dag_and_task_ids() -> set[str]:
    ids = set()
    for path in (REPO / "dags").glob("*.py"):
        source = path.read_text()
        ids |= set(re.findall(r'dag_id="([^"]+)"', source))
        ids |= set(re.findall(r"@task[^\n]*\n\s+def (\w+)", source))
    return ids


@pytest.mark.parametrize("doc", DOCS)
def test_dags_and_tasks_named_exist(doc):
    known = _dag_and_task_ids()
    assert {"ingest_ehr", "deliver_to_fhir_server", "raise_alerts", "publish_quality_docs"} <= known
    named = set(re.findall(r"`((?:ingest|safety|fhir|raise|deliver|publish|build|export)_\w+)`", _text(doc)))
    for dag_id, attribute in re.findall(r"\b((?:ingest|safety|fhir)_[a-z_]+)\.([a-z_]+)\b", _text(doc)):
        if attribute not in ("yaml", "md", "py", "json", "parquet", "ndjson"):
            named |= {dag_id, attribute}
    assets = {"safety_marts", "safety_dashboard", "fhir_export", "staged_vital_signs"}
    unknown = {n for n in named if n not in known and n not in assets and not n.startswith(("staged_", "landing_"))}
    assert unknown == set(), unknown


@pytest.mark.parametrize("doc", DOCS)
def test_settings_and_variables_named_exist(doc):
    from airflow.configuration import conf

    from tests.deploy.test_connections import _code_env_vars

    model = compose()
    known = variables_used() | set(read_env_file()) | set(commented_examples()) | _code_env_vars()
    known |= set(model["x-airflow-common"]["environment"])
    for service in model["services"].values():
        known |= set(service.get("environment", {}))
    description = conf.configuration_description
    for name in set(re.findall(r"`\$?([A-Z][A-Z0-9]*_[A-Z0-9_]+)[=`]", _text(doc))):
        if name in known or any(name.startswith(other) for other in OTHER_NAMES):
            continue
        match = re.match(r"^AIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)$", name)
        assert match, (doc, name)
        section, key = (part.lower() for part in match.groups())
        assert key in description.get(section, {}).get("options", {}), (doc, name)


def test_connection_ids_named_are_the_ones_compose_sets():
    env = compose()["x-airflow-common"]["environment"]
    ids = {name.removeprefix("AIRFLOW_CONN_").lower() for name in env if name.startswith("AIRFLOW_CONN_")}
    for doc in DOCS:
        for conn_id in re.findall(r"`(clinic_[a-z_]+)`", _text(doc)):
            if conn_id.startswith(("clinic_pipeline", "clinic_network", "clinic_id")):
                continue
            assert conn_id in ids, (doc, conn_id)


def test_pinned_images_named_in_operations_are_the_compose_ones():
    images = {
        service["image"] for service in compose()["services"].values() if "clinic-pipeline" not in service["image"]
    }
    base = re.search(r"^FROM\s+(\S+)", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE).group(1)
    text = _text("operations.md")
    for image in (*images, base):
        assert f"`{image}`" in text, image
