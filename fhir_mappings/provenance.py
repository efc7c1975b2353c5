"""Provenance: which source batch each exported resource came from.

One Provenance per (source batch, patient): small enough to travel in that patient's delivery bundle, and a
consumer can follow any resource back to the HL7 file, app export, REDCap export or EHR read it came from.
R4 Provenance has no `identifier` search parameter, so delivery addresses it by its deterministic id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from fhir_mappings import identity as ids
from fhir_mappings.mapped import Mapped
from fhir_mappings.terminology import PROVENANCE_PARTICIPANT

PIPELINE_AGENT = {"display": "clinic-pipeline (ketamine clinic network data platform)"}


def source_of(batch_id: str) -> str:
    """The clinic system a batch came from: its id starts with the source (monitor-, epro-, redcap-, ehr-)."""
    return batch_id.split("-", 1)[0]


def trail(mapped: Mapped) -> Iterable[tuple[str, str | None, str, str]]:
    """(reference, owning patient, source batch, source time) of each resource: all Provenance needs."""
    refs = [f"{mapped.resource_type}/{rid}" for rid in mapped.ids]
    return zip(refs, mapped.patient_ids, mapped.batch_ids, mapped.source_times, strict=True)


def build_provenance(trails: Iterable[tuple[str, str | None, str, str]]) -> Mapped:
    targets: dict[tuple[str, str], list[str]] = defaultdict(list)
    recorded: dict[tuple[str, str], str] = {}
    for ref, patient, batch, when in trails:
        key = (batch, patient or "")
        targets[key].append(ref)
        if when > recorded.get(key, ""):
            recorded[key] = when
    out = Mapped("Provenance")
    for (batch, patient), refs in sorted(targets.items()):
        value = f"{batch}|{patient}" if patient else batch
        out.resources.append(
            {
                "resourceType": "Provenance",
                "id": ids.resource_id("Provenance", ids.PROVENANCE, value),
                "target": [{"reference": r} for r in refs],  # source order: deterministic, no sort needed
                "recorded": recorded[(batch, patient)],
                "agent": [
                    {
                        "type": {
                            "coding": [{"system": PROVENANCE_PARTICIPANT, "code": "assembler", "display": "Assembler"}]
                        },
                        "who": PIPELINE_AGENT,
                    }
                ],
                "entity": [
                    {
                        "role": "source",
                        "what": {
                            "identifier": ids.identifier(ids.BATCH, batch),
                            "display": f"{source_of(batch)} batch",
                        },
                    }
                ],
            }
        )
        out.shapes.append(("Provenance",))
        out.patient_ids.append(patient or None)
        out.batch_ids.append(batch)
        out.source_times.append(recorded[(batch, patient)])
    return out
