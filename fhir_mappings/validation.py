"""Full validation of FHIR R4 resources: structure (fhir.resources R4B models), the rules they do not check
(`profile_rules`) and references that must resolve within the set of resources checked together.

This is the reference validator: `clinic-pipeline validate-fhir` runs it over any NDJSON or Bundle file, the
export gate runs it on one resource of every shape, and the benchmark's naive path runs its structural half on
every resource.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir_mappings import profile_rules
from fhir_mappings.resource_types import RESOURCE_TYPES

# R4 resource types whose R4B models are wire-identical to R4 (research: R4 vs R4B StructureDefinition diff).
SUPPORTED = frozenset([*RESOURCE_TYPES, "Bundle", "OperationOutcome"])


@dataclass(frozen=True, slots=True)
class Problem:
    location: str  # file:line (or file:entry[n] in a Bundle)
    resource: str  # Type/id
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.location} {self.resource} {self.path}: {self.message}"


def model_class(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def structure_problems(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, message) from the R4B model: element names, required elements, JSON types, primitive formats."""
    from pydantic import ValidationError

    rtype = resource.get("resourceType")
    if rtype not in SUPPORTED:
        return [("resourceType", f"{rtype!r} is not a resource type this pipeline exchanges")]
    try:
        model_class(rtype).model_validate(resource)
    except ValidationError as error:
        return [(".".join(str(p) for p in e["loc"]) or "(root)", e["msg"]) for e in error.errors()]
    except Exception as error:  # fhir.resources raises KeyError etc. for unknown nested types
        return [("(root)", f"{type(error).__name__}: {error}")]
    return []


def resource_problems(resource: dict[str, Any]) -> list[tuple[str, str]]:
    return structure_problems(resource) + profile_rules.problems(resource)


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


@dataclass
class Report:
    checked: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(location, parsed JSON) per resource line of NDJSON, or the single document of a .json file."""
    if path.suffix == ".ndjson":
        with path.open("rb") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield f"{path}:{number}", _parse(line)
    else:
        yield f"{path}:1", _parse(path.read_bytes())


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return error


def validate_files(paths: Iterable[Path]) -> Report:
    """Validate every resource in the files; references must resolve among all of them (or within a Bundle)."""
    report = Report()
    known: set[str] = set()
    pending: list[tuple[str, str, str, str]] = []  # (location, resource, path, reference)
    for path in paths:
        for location, document in _records(Path(path)):
            if isinstance(document, Exception) or not isinstance(document, dict):
                report.problems.append(Problem(location, "-", "(root)", f"not a JSON object: {document}"))
                continue
            for where, resource, full_url, whole in _entries(document, location):
                name = f"{resource.get('resourceType')}/{resource.get('id', '-')}"
                report.checked += 1
                report.by_type[str(resource.get("resourceType"))] += 1
                known.add(name)
                if full_url:
                    known.add(full_url)
                found = resource_problems(resource) if whole else profile_rules.problems(resource)
                report.problems += [Problem(where, name, elem, message) for elem, message in found]
                if resource.get("resourceType") != "Bundle":
                    pending += [(where, name, "reference", r) for r in references(resource) if not r.startswith("#")]
    for where, name, elem, ref in pending:
        if ref not in known:
            report.problems.append(
                Problem(where, name, elem, f"reference {ref} does not resolve within the files checked")
            )
    return report


def _entries(document: dict[str, Any], location: str) -> list[tuple[str, dict, str | None, bool]]:
    """(location, resource, fullUrl, validate structure too?) per resource of the document.

    A Bundle's structure is validated once as a whole (the R4B model walks its entries); each entry resource is
    then checked against the profile rules and gives its own references and fullUrl.
    """
    if document.get("resourceType") != "Bundle":
        return [(location, document, None, True)]
    entries: list[tuple[str, dict, str | None, bool]] = [(location, document, None, True)]
    for i, entry in enumerate(document.get("entry", [])):
        resource = entry.get("resource")
        if isinstance(resource, dict):
            entries.append((f"{location}:entry[{i}]", resource, entry.get("fullUrl"), False))
    return entries
