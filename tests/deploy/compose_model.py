"""docker-compose.yml as Compose itself would see it, without a Docker engine.

No Docker engine (and no `docker compose` plugin) exists where these tests run, so the file is loaded with
PyYAML (anchors and `<<` merge keys resolved) and interpolated here following the compose-spec rules:
`$$` is a literal `$`; `$VAR`, `${VAR}`; `${VAR:-default}` / `${VAR-default}` (unset or empty / unset);
`${VAR:?error}` / `${VAR?error}`; `${VAR:+alt}` / `${VAR+alt}`; defaults may nest further `${...}`.
The variables come from deploy/env.example, the template of the `.env` file Compose reads.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "deploy" / "env.example"
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
# Run once and exit (no healthcheck: nothing long-running to probe).
ONE_SHOT = {"airflow-init", "airflow-cli", "clinic-simulator"}
# Secrets the tests put into the otherwise empty required values of env.example.
FILLED = {
    "AIRFLOW_FERNET_KEY": "Jk7VJ5Xq3aXr0y4gM9vUZLwV2vY0x2YdJQnqYt1c9Rk=",
    "AIRFLOW_JWT_SECRET": "jwt-secret-for-tests",
    "AIRFLOW_ADMIN_PASSWORD": "admin-password-for-tests",
    "AIRFLOW_DB_PASSWORD": "airflow-db-password",
    "EVENT_BUS_PASSWORD": "event-bus-password",
    "HAPI_DB_PASSWORD": "hapi-db-password",
}


class InterpolationError(ValueError):
    pass


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments and blank lines skipped, one level of quotes removed)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if not match:
            continue
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def commented_examples(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """The `#NAME=value` example lines of env.example (the values an operator is shown, not the defaults)."""
    examples: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            name, value = match.groups()
            examples[name] = value[1:-1] if value[:1] == "'" and value[-1:] == "'" else value
    return examples


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing the `${` whose body starts at `start` (nested `${...}` skipped)."""
    depth, i = 1, start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError(f"unclosed ${{ in {text!r}")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_expand(text[i + 2 : end], env))
            i = end + 1
        elif text[i] == "$" and (match := re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i + 1 :])):
            out.append(env.get(match.group(0), ""))
            i += 1 + match.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _expand(body: str, env: Mapping[str, str]) -> str:
    match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", body, flags=re.DOTALL)
    if not match:
        raise InterpolationError(f"invalid interpolation ${{{body}}}")
    name, operator, argument = match.groups()
    value = env.get(name)
    if operator is None:
        return value or ""
    empty_counts = operator.startswith(":")
    missing = value is None or (empty_counts and value == "")
    kind = operator[-1]
    if kind == "-":
        return interpolate(argument, env) if missing else value
    if kind == "?":
        if missing:
            raise InterpolationError(f"{name}: {interpolate(argument, env)}")
        return value
    return "" if missing else interpolate(argument, env)  # "+"


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def raw_compose() -> dict[str, Any]:
    """The YAML as written (anchors and merge keys resolved, nothing interpolated)."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def variables_used(text: str | None = None) -> set[str]:
    """Every variable name the compose file interpolates (`$$` escapes excluded)."""
    text = COMPOSE_FILE.read_text(encoding="utf-8") if text is None else text
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    text = text.replace("$$", "")
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)) | set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text))


def test_env(**overrides: str) -> dict[str, str]:
    """env.example with its required secrets filled in, as an operator's .env would be."""
    env = read_env_file() | FILLED
    env.update(overrides)
    return env


test_env.__test__ = False  # a helper, not a test


def compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose model after interpolation with `env` (default: the filled env.example)."""
    return interpolate_tree(raw_compose(), test_env() if env is None else env)


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/", "~"))


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    """Short-syntax volumes of a service (the only syntax docker-compose.yml uses)."""
    found = []
    for spec in service.get("volumes", []):
        parts = spec.split(":")
        mode = parts[2] if len(parts) > 2 else "rw"
        found.append(Mount(parts[0], parts[1], "ro" in mode.split(",")))
    return found


def command_args(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def healthcheck_argv(service: Mapping[str, Any]) -> tuple[str, list[str]]:
    """("CMD" or "CMD-SHELL", the probe as argv)."""
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return "CMD-SHELL", shlex.split(test)
    kind, *rest = test
    if kind == "CMD-SHELL":
        return kind, shlex.split(" ".join(rest))
    return kind, rest
