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
    """The resources that may leave the pipeline; the others move to `rejections` with their reason.

    `verdicts` (shape -> first problem, or None) carries across calls so each shape is validated once per run.
    """
    verdicts = {} if verdicts is None else verdicts
    keep: list[bool] = []
    seen: set[str] = set()
    rejected: list[dict[str, str]] = []
    for resource, shape, batch in zip(mapped.resources, mapped.shapes, mapped.batch_ids, strict=True):
        if shape not in verdicts:
            found = resource_problems(resource)
            verdicts[shape] = f"{found[0][0]}: {found[0][1]}" if found else None
        problem = verdicts[shape]
        rule = "fhir_structure" if problem else None
        if problem is None and resource["id"] in seen:
            rule, problem = "duplicate_id", "another source row maps to the same resource id"
        seen.add(resource["id"])
        keep.append(rule is None)
        if rule is not None:
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
    out = Mapped(mapped.resource_type, rejections=concat_rejections([mapped.rejections, pd.DataFrame(rejected)]))
    for field in ("resources", "shapes", "patient_ids", "batch_ids", "source_times"):
        setattr(out, field, [v for v, k in zip(getattr(mapped, field), keep, strict=True) if k])
    return out
