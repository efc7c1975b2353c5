"""The whole staged network -> FHIR R4 resources, parents before children so every reference resolves.

Order: clinics, patients, sessions (Encounter, dosing weight, MedicationAdministration), then what hangs off a
session (readings, questionnaires, ratings, adverse events), then Provenance. A row whose parent was not
exported (held in quarantine, or never received) is rejected with `reference_unresolved`, never exported with a
dangling reference.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import pandas as pd

from fhir_mappings import identity as ids
from fhir_mappings.administrative import build_organizations, build_patients
from fhir_mappings.adverse_events import build_detected_events, build_recorded_events
from fhir_mappings.gate import gate
from fhir_mappings.mapped import REJECTION_COLUMNS, Mapped, concat_rejections
from fhir_mappings.provenance import build_provenance
from fhir_mappings.questionnaires import build_questionnaires
from fhir_mappings.sessions import (
    build_dosing_weights,
    build_encounters,
    build_medication_administrations,
    session_rows,
)
from fhir_mappings.validation import references
from fhir_mappings.vital_signs import build_vital_signs

RESOURCE_TYPES = (
    "Organization",
    "Patient",
    "Encounter",
    "MedicationAdministration",
    "Observation",
    "QuestionnaireResponse",
    "AdverseEvent",
    "Provenance",
)


@dataclass
class StagedNetwork:
    """The staged tables the mapping reads (empty frames where a table has no rows yet)."""

    clinics: pd.DataFrame
    patients: pd.DataFrame
    infusion_sessions: pd.DataFrame
    vital_signs: pd.DataFrame
    questionnaire_responses: pd.DataFrame
    clinician_ratings: pd.DataFrame
    adverse_events: pd.DataFrame
    detected_events: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class FhirNetwork:
    resources: dict[str, Mapped]
    rejections: pd.DataFrame

    def counts(self) -> dict[str, int]:
        return {t: len(m) for t, m in self.resources.items()}


def map_network(staged: StagedNetwork) -> FhirNetwork:
    verdicts: dict[Hashable, str | None] = {}
    organizations = (
        gate(build_organizations(staged.clinics), verdicts) if len(staged.clinics) else Mapped("Organization")
    )
    clinic_ids = {r["identifier"][0]["value"] for r in organizations.resources}
    patients = (
        gate(build_patients(staged.patients, clinic_ids), verdicts) if len(staged.patients) else Mapped("Patient")
    )
    patient_keys = {r["identifier"][0]["value"] for r in patients.resources}

    encounters, administrations, observations = (
        Mapped("Encounter"),
        Mapped("MedicationAdministration"),
        Mapped("Observation"),
    )
    if len(staged.infusion_sessions):
        sessions, rejected = session_rows(staged.infusion_sessions, patient_keys)
        encounters = gate(build_encounters(sessions), verdicts)
        encounters.rejections = concat_rejections([rejected, encounters.rejections])
        weight = staged.patients.drop_duplicates("patient_id").set_index("patient_id")["weight_kg"]
        weights = gate(build_dosing_weights(sessions, weight), verdicts)
        observations.extend(weights)
        weighed = {r["identifier"][0]["value"] for r in weights.resources}
        administrations = gate(build_medication_administrations(sessions, weighed), verdicts)
    session_keys = {r["identifier"][0]["value"] for r in encounters.resources}

    if len(staged.vital_signs):
        observations.extend(gate(build_vital_signs(staged.vital_signs, session_keys), verdicts))
    responses = Mapped("QuestionnaireResponse")
    for forms, mapped in _questionnaire_sources(staged, session_keys, patient_keys):
        responses.extend(gate(forms, verdicts))
        observations.extend(gate(mapped, verdicts))
    events = Mapped("AdverseEvent")
    if len(staged.adverse_events):
        events.extend(gate(build_recorded_events(staged.adverse_events, session_keys), verdicts))
    if len(staged.detected_events):
        events.extend(gate(build_detected_events(staged.detected_events, session_keys), verdicts))

    clinical = [organizations, patients, encounters, administrations, observations, responses, events]
    _drop_dangling(clinical)
    provenance = gate(build_provenance(clinical), verdicts)
    resources = {m.resource_type: m for m in [*clinical, provenance]}
    rejections = concat_rejections([m.rejections for m in resources.values()])
    return FhirNetwork(resources, rejections[REJECTION_COLUMNS])


def _questionnaire_sources(
    staged: StagedNetwork, session_keys: set[str], patient_keys: set[str]
) -> list[tuple[Mapped, Mapped]]:
    sources = []
    forms = staged.questionnaire_responses
    if len(forms):
        sources.append(
            build_questionnaires(
                forms,
                source_table="questionnaire_responses",
                identifier_system=ids.EPRO_RESPONSE,
                key_column="questionnaire_id",
                when_column="authored_at",
                status=forms["status"],
                session_keys=session_keys,
                patient_keys=patient_keys,
            )
        )
    ratings = staged.clinician_ratings
    if len(ratings):
        sources.append(
            build_questionnaires(
                ratings,
                source_table="clinician_ratings",
                identifier_system=ids.CLINICIAN_RATING,
                key_column="rating_key",
                when_column="rated_at",
                status=ratings["is_complete"].map({True: "completed", False: "in-progress"}),
                session_keys=session_keys,
                patient_keys=patient_keys,
            )
        )
    return sources


def _drop_dangling(groups: list[Mapped]) -> None:
    """Only needed when the gate held a resource back: then whatever points to it must be held back too."""
    if not any(
        (m.rejections["rule"].isin(["fhir_structure", "duplicate_id"])).any() for m in groups if len(m.rejections)
    ):
        return
    while True:
        known = {f"{m.resource_type}/{r['id']}" for m in groups for r in m.resources}
        changed = False
        for m in groups:
            keep = [all(ref in known for ref in references(r)) for r in m.resources]
            if all(keep):
                continue
            changed = True
            dropped = [
                {
                    "resource_type": m.resource_type,
                    "source_table": "",
                    "row_key": r["id"],
                    "batch_id": b,
                    "rule": "reference_unresolved",
                    "reason": "refers to a resource held back by the export gate",
                }
                for r, b, k in zip(m.resources, m.batch_ids, keep, strict=True)
                if not k
            ]
            m.rejections = concat_rejections([m.rejections, pd.DataFrame(dropped)])
            for name in ("resources", "shapes", "patient_ids", "batch_ids", "source_times"):
                setattr(m, name, [v for v, k in zip(getattr(m, name), keep, strict=True) if k])
        if not changed:
            return
