"""The whole staged network -> FHIR R4 resources, parents before children so every reference resolves.

Order: clinics, patients, sessions (Encounter, dosing weight, MedicationAdministration), then what hangs off a
session (readings, questionnaires, ratings, adverse events), then Provenance. A row whose parent was not
exported (held in quarantine, or never received) is rejected with `reference_unresolved`, never exported with a
dangling reference.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

import pandas as pd

from fhir_mappings import identity as ids
from fhir_mappings.administrative import build_organizations, build_patients
from fhir_mappings.adverse_events import build_detected_events, build_recorded_events
from fhir_mappings.gate import gate
from fhir_mappings.mapped import REJECTION_COLUMNS, KeySet, Mapped, concat_rejections
from fhir_mappings.provenance import Trail, build_provenance
from fhir_mappings.questionnaires import build_questionnaires
from fhir_mappings.resource_types import RESOURCE_TYPES
from fhir_mappings.sessions import (
    build_dosing_weights,
    build_encounters,
    build_medication_administrations,
    session_rows,
)
from fhir_mappings.validation import references
from fhir_mappings.vital_signs import build_vital_signs


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
    """All resources at once: for tests and small networks (the export streams `NetworkMapper.groups`)."""

    resources: dict[str, Mapped]
    rejections: pd.DataFrame

    def counts(self) -> dict[str, int]:
        return {t: len(m) for t, m in self.resources.items()}


def map_network(staged: StagedNetwork) -> FhirNetwork:
    mapper = NetworkMapper(staged)
    resources = {t: Mapped(t) for t in RESOURCE_TYPES}
    for group in mapper.groups():
        group.resources = group.all_resources()
        resources[group.resource_type].extend(group)
    return FhirNetwork(resources, mapper.rejections())


class NetworkMapper:
    """Maps the network group by group, parents first, so memory holds one group of resources at a time.

    Each group passes the export gate before it is yielded; the keys of what was admitted decide which children
    can be built (a child of a rejected parent is rejected with `reference_unresolved`).
    """

    def __init__(self, staged: StagedNetwork, chunk_rows: int = 5_000) -> None:
        self.staged = staged
        self.chunk_rows = chunk_rows
        self.verdicts: dict[Hashable, str | None] = {}
        self.trail: list[Trail] = []  # the input of Provenance, and what was exported
        self.held_back = False
        self._rejections: list[pd.DataFrame] = []

    def rejections(self) -> pd.DataFrame:
        return concat_rejections(self._rejections)[REJECTION_COLUMNS]

    def _admit(self, mapped: Mapped) -> Mapped:
        before = len(mapped.rejections)
        admitted = gate(mapped, self.verdicts)
        self.held_back |= len(admitted.rejections) > before
        if self.held_back:  # only after the gate held something back can a reference dangle (rare: costly)
            _drop_dangling(admitted, {ref for group in self.trail for ref in group.refs()})
        if admitted.resource_type != "Provenance":
            self.trail.append(Trail.of(admitted))
        self._rejections.append(admitted.rejections)
        return admitted

    def _keys(self, mapped: Mapped) -> KeySet:
        return KeySet(r["identifier"][0]["value"] for r in mapped.resources)

    def groups(self) -> Iterator[Mapped]:
        """Each admitted group once; the consumer writes its lines and lets it go (memory: one group)."""
        staged = self.staged
        organizations = self._admit(build_organizations(staged.clinics))
        clinic_ids = self._keys(organizations)
        yield organizations
        patients = self._admit(build_patients(staged.patients, clinic_ids))
        patient_keys = self._keys(patients)
        yield patients
        del organizations, patients
        session_keys = KeySet()
        if len(staged.infusion_sessions):
            sessions, rejected = session_rows(staged.infusion_sessions, patient_keys)
            self._rejections.append(rejected)
            encounters = self._admit(build_encounters(sessions))
            encounter_keys = self._keys(encounters)
            yield encounters
            weight = staged.patients.drop_duplicates("patient_id").set_index("patient_id")["weight_kg"]
            weights = self._admit(build_dosing_weights(sessions, weight))
            weighed = self._keys(weights)
            yield weights
            del encounters, weights
            administrations = self._admit(build_medication_administrations(sessions, weighed))
            # Children point to the Encounter and (adverse events) to the MedicationAdministration.
            session_keys = KeySet(encounter_keys & self._keys(administrations))
            yield administrations
            del administrations
        for start in range(0, len(staged.vital_signs), self.chunk_rows):
            chunk = staged.vital_signs.iloc[start : start + self.chunk_rows]
            yield self._admit(build_vital_signs(chunk, session_keys))
        for forms, scores in _questionnaire_sources(staged, session_keys, patient_keys):
            yield self._admit(forms)
            del forms
            yield self._admit(scores)
        if len(staged.adverse_events):
            yield self._admit(build_recorded_events(staged.adverse_events, session_keys))
        if len(staged.detected_events):
            yield self._admit(build_detected_events(staged.detected_events, session_keys))
        yield self._admit(build_provenance(self.trail))


def _questionnaire_sources(
    staged: StagedNetwork, session_keys: set[str], patient_keys: set[str]
) -> Iterator[tuple[Mapped, Mapped]]:
    """The app's forms, then the clinician ratings: one source in memory at a time."""
    forms = staged.questionnaire_responses
    if len(forms):
        yield build_questionnaires(
            forms,
            source_table="questionnaire_responses",
            identifier_system=ids.EPRO_RESPONSE,
            key_column="questionnaire_id",
            when_column="authored_at",
            status=forms["status"],
            session_keys=session_keys,
            patient_keys=patient_keys,
        )
    ratings = staged.clinician_ratings
    if len(ratings):
        yield build_questionnaires(
            ratings,
            source_table="clinician_ratings",
            identifier_system=ids.CLINICIAN_RATING,
            key_column="rating_key",
            when_column="rated_at",
            status=ratings["is_complete"].map({True: "completed", False: "in-progress"}),
            session_keys=session_keys,
            patient_keys=patient_keys,
        )


def _drop_dangling(mapped: Mapped, exported: set[str]) -> None:
    """Hold back resources that point to something the gate held back (parents are admitted first)."""
    resources = mapped.all_resources()
    own = {f"{mapped.resource_type}/{rid}" for rid in mapped.ids}
    keep = [all(ref in exported or ref in own for ref in references(r)) for r in resources]
    if all(keep):
        return
    dropped = [
        {
            "resource_type": mapped.resource_type,
            "source_table": "",
            "row_key": r["id"],
            "batch_id": batch,
            "rule": "reference_unresolved",
            "reason": "refers to a resource held back by the export gate",
        }
        for r, batch, k in zip(resources, mapped.batch_ids, keep, strict=True)
        if not k
    ]
    mapped.rejections = concat_rejections([mapped.rejections, pd.DataFrame(dropped)])
    mapped.keep(keep)
