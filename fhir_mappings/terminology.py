"""Terminology maps, kept as data files in `terminology/` (local code -> LOINC, SNOMED CT, RxNorm, UCUM, FHIR codes).

Codes marked [check] in the files are commonly quoted values not confirmed against the primary source; they are
data, so a terminologist can correct them without touching code.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

TERMINOLOGY = Path(__file__).with_name("terminology")

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
AE_SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"

# Our own code systems and extensions (no standard code exists: CADSS, MADRS, protocols, CTCAE grade...).
NETWORK = "urn:ketamine-network"
LOCAL_CODES = f"{NETWORK}:CodeSystem"
EXTENSIONS = f"{NETWORK}:StructureDefinition"


def _rows(name: str) -> list[dict[str, str]]:
    with (TERMINOLOGY / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@dataclass(frozen=True, slots=True)
class VitalSign:
    measure: str
    staged_column: str
    loinc: str
    display: str
    ucum: str
    unit: str
    profile: str


@functools.cache
def vital_signs() -> dict[str, VitalSign]:
    return {r["measure"]: VitalSign(**r) for r in _rows("vital_signs.csv")}


@functools.cache
def medications() -> dict[str, tuple[str, str]]:
    """drug -> (RxNorm code, display)."""
    return {r["drug"]: (r["rxnorm"], r["display"]) for r in _rows("medications.csv")}


@functools.cache
def routes() -> dict[str, tuple[str, str]]:
    """EHR route -> (SNOMED CT code, display)."""
    return {r["route"]: (r["snomed"], r["display"]) for r in _rows("routes.csv")}


@functools.cache
def session_statuses() -> dict[str, tuple[str, str]]:
    """EHR session status -> (Encounter.status, MedicationAdministration.status)."""
    return {
        r["session_status"]: (r["encounter_status"], r["medication_administration_status"])
        for r in _rows("encounter_status.csv")
    }


@functools.cache
def adverse_event_outcomes() -> dict[str, tuple[str, str]]:
    return {r["outcome"]: (r["fhir_code"], r["display"]) for r in _rows("adverse_event_outcomes.csv")}


@functools.cache
def ctcae_severity() -> dict[int, tuple[str, str]]:
    return {int(r["ctcae_grade"]): (r["fhir_severity"], r["display"]) for r in _rows("ctcae_severity.csv")}


@dataclass(frozen=True, slots=True)
class Instrument:
    instrument: str
    questionnaire: str
    title: str
    answer_kind: str  # frequency (LOINC answer list) | yes_no | integer
    score_system: str
    score_code: str
    score_display: str
    score_kind: str  # total (valueInteger) | risk (valueCodeableConcept)


@functools.cache
def instruments() -> dict[str, Instrument]:
    return {r["instrument"]: Instrument(**r) for r in _rows("questionnaires.csv")}


@functools.cache
def instrument_items() -> dict[str, list[tuple[str, str]]]:
    """instrument -> [(linkId, text)] in form order."""
    items: dict[str, list[tuple[str, str]]] = {}
    for r in sorted(_rows("questionnaire_items.csv"), key=lambda r: (r["instrument"], int(r["position"]))):
        items.setdefault(r["instrument"], []).append((r["link_id"], r["text"]))
    return items


@functools.cache
def answer_codings() -> dict[tuple[str, str], dict[str, str]]:
    """(answer kind, value as text: '0'..'3', 'true', 'false') -> Coding."""
    return {
        (r["answer_kind"], r["value"]): {"system": r["system"], "code": r["code"], "display": r["display"]}
        for r in _rows("answers.csv")
    }


@functools.cache
def ucum_units() -> frozenset[str]:
    """The UCUM codes this pipeline emits; a Quantity with any other code is an error."""
    return frozenset(r["code"] for r in _rows("ucum_units.csv"))


@functools.cache
def protocols() -> dict[str, str]:
    return {r["protocol"]: r["display"] for r in _rows("protocols.csv")}
