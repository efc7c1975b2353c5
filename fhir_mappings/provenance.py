"""Provenance: which source batch each exported resource came from.

One Provenance per (source batch, patient): small enough to travel in that patient's delivery bundle, and a
consumer can follow any resource back to the HL7 file, app export, REDCap export or EHR read it came from.
R4 Provenance has no `identifier` search parameter, so delivery addresses it by its deterministic id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_mappings import identity as ids
from fhir_mappings.mapped import Mapped
from fhir_mappings.template import Template
from fhir_mappings.terminology import PROVENANCE_PARTICIPANT

PIPELINE_AGENT = {"display": "clinic-pipeline (ketamine clinic network data platform)"}


def source_of(batch_id: str) -> str:
    """The clinic system a batch came from: its id starts with the source (monitor-, epro-, redcap-, ehr-)."""
    return batch_id.split("-", 1)[0]


@dataclass(frozen=True)
class Trail:
    """What Provenance needs of an admitted group: ids, owners, batches, times (lists shared, not copied)."""

    resource_type: str
    ids: list[str]
    patient_ids: list[str | None]
    batch_ids: list[str]
    source_times: list[str]

    @classmethod
    def of(cls, mapped: Mapped) -> Trail:
        return cls(mapped.resource_type, mapped.ids, mapped.patient_ids, mapped.batch_ids, mapped.source_times)

    def refs(self) -> Iterator[str]:
        return (f"{self.resource_type}/{rid}" for rid in self.ids)


def build_provenance(trails: Iterable[Trail]) -> Mapped:
    targets: dict[tuple[str, str], list[str]] = defaultdict(list)
    recorded: dict[tuple[str, str], str] = {}
    for group in trails:
        for ref, patient, batch, when in zip(
            group.refs(), group.patient_ids, group.batch_ids, group.source_times, strict=True
        ):
            key = (batch, patient or "")
            targets[key].append(ref)
            if when > recorded.get(key, ""):
                recorded[key] = when
    out = Mapped("Provenance")
    template = Template(provenance, 5)
    for (batch, patient), refs in sorted(targets.items()):
        rid = ids.resource_id("Provenance", ids.PROVENANCE, f"{batch}|{patient}" if patient else batch)
        values = (rid, refs, recorded[(batch, patient)], batch, f"{source_of(batch)} batch")
        if not out.examples:
            out.examples[("Provenance",)] = template.check(*values[:1], _targets(refs), *values[2:])
        target = b"[" + b",".join(b'{"reference":"%s"}' % ref.encode() for ref in refs) + b"]"
        out.add_line(
            template.fill([orjson.dumps(rid), target, *map(orjson.dumps, values[2:])]),
            rid,
            ("Provenance",),
            patient or None,
            batch,
            recorded[(batch, patient)],
        )
    return out


def _targets(refs: list[str]) -> list[dict[str, str]]:
    return [{"reference": r} for r in refs]  # source order: deterministic, no sort needed


def provenance(rid: str, target: Any, recorded: str, batch: str, display: str) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "id": rid,
        "target": target,
        "recorded": recorded,
        "agent": [
            {
                "type": {"coding": [{"system": PROVENANCE_PARTICIPANT, "code": "assembler", "display": "Assembler"}]},
                "who": PIPELINE_AGENT,
            }
        ],
        "entity": [{"role": "source", "what": {"identifier": ids.identifier(ids.BATCH, batch), "display": display}}],
    }
