"""The export gate: every resource is valid, at a fraction of the cost of validating each one.

Builders have already checked every varying value of every row in vectorised form (required, value sets,
finite numbers, references that resolve, formats fixed by construction). What is left is structure, and
resources of one shape share it: the gate validates one resource per shape with the full validator (R4B model
+ profile rules). A shape that fails takes all its resources to quarantine with the first problem as reason.
Duplicate ids (two source rows claiming one identity) are quarantined too: a consumer would see one overwrite
the other.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import orjson
import pandas as pd

from fhir_mappings.mapped import Mapped, concat_rejections
from fhir_mappings.validation import resource_problems


def _row_key(resource: dict[str, Any]) -> str:
    identifier = resource.get("identifier")
    if isinstance(identifier, list) and identifier:
        identifier = identifier[0]
    if isinstance(identifier, dict) and "value" in identifier:
        return str(identifier["value"])
    return f"{resource['resourceType']}/{resource.get('id')}"


def gate(mapped: Mapped, verdicts: dict[Hashable, str | None] | None = None) -> Mapped:
    """The resources that may leave the pipeline, serialized; the others move to `rejections` with a reason.

    `verdicts` (shape -> first problem, or None) carries across calls so each shape is validated once per run.
    """
    verdicts = {} if verdicts is None else verdicts
    built_as_dicts = bool(mapped.resources)
    if built_as_dicts:
        mapped.ids = [r["id"] for r in mapped.resources]
        mapped.lines = [orjson.dumps(r) for r in mapped.resources]
    first_of_shape: dict[Hashable, int] = {}
    for index, shape in enumerate(mapped.shapes):
        first_of_shape.setdefault(shape, index)
    for shape, index in first_of_shape.items():
        if shape not in verdicts:
            example = mapped.resources[index] if built_as_dicts else mapped.examples[shape]
            found = resource_problems(example)
            verdicts[shape] = f"{found[0][0]}: {found[0][1]}" if found else None
    if all(verdicts[shape] is None for shape in first_of_shape) and len(set(mapped.ids)) == len(mapped.ids):
        return mapped  # the common case: every shape valid, no duplicate id
    keep: list[bool] = []
    seen: set[str] = set()
    rejected: list[dict[str, str]] = []
    for index, (rid, shape, batch) in enumerate(zip(mapped.ids, mapped.shapes, mapped.batch_ids, strict=True)):
        problem = verdicts[shape]
        rule = "fhir_structure" if problem else None
        if problem is None and rid in seen:
            rule, problem = "duplicate_id", "another source row maps to the same resource id"
        seen.add(rid)
        keep.append(rule is None)
        if rule is not None:
            resource = mapped.resources[index] if built_as_dicts else orjson.loads(mapped.lines[index])
            rejected.append(
                {
                    "resource_type": mapped.resource_type,
                    "source_table": "",
                    "row_key": _row_key(resource),
                    "batch_id": batch,
                    "rule": rule,
                    "reason": str(problem),
                }
            )
    mapped.keep(keep)
    mapped.rejections = concat_rejections([mapped.rejections, pd.DataFrame(rejected)])
    return mapped
