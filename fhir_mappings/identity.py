"""Business identifiers and deterministic ids.

Every resource carries a business identifier (system + value from the clinic systems' own keys) and an id that
is uuid5 of its type and identifier: the same source row gives the same id in every run, on every machine, so
reruns write identical bytes and a FHIR server sees updates, not new resources.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from typing import Any

from fhir_mappings.terminology import NETWORK

# Fixed for the life of the network: changing it would re-identify every resource ever delivered.
ID_NAMESPACE = uuid.UUID("6f1c6c1e-0d3b-5a4e-9b1e-5c0a7e9d2b41")

CLINIC = f"{NETWORK}:clinic"
PATIENT = f"{NETWORK}:patient"
SESSION = f"{NETWORK}:session"
MEDICATION_ADMINISTRATION = f"{NETWORK}:medication-administration"
VITAL_SIGN = f"{NETWORK}:vital-sign"
DOSING_WEIGHT = f"{NETWORK}:dosing-weight"
EPRO_RESPONSE = f"{NETWORK}:epro-app:response"  # the patient app's own QuestionnaireResponse identifier
CLINICIAN_RATING = f"{NETWORK}:redcap-rating"
INSTRUMENT_SCORE = f"{NETWORK}:instrument-score"
ADVERSE_EVENT = f"{NETWORK}:adverse-event"
DETECTED_EVENT = f"{NETWORK}:detected-adverse-event"
PROVENANCE = f"{NETWORK}:provenance"
BATCH = f"{NETWORK}:batch"
EXPORT_REJECTION = f"{NETWORK}:export-rejection"


def mrn_system(clinic_id: str) -> str:
    """The clinic's own MRN system, as the EHR and the patient app already use it."""
    return f"{NETWORK}:{clinic_id}:mrn"


_NAMESPACE_BYTES = ID_NAMESPACE.bytes


@functools.cache
def _hasher(resource_type: str, system: str) -> Any:
    """SHA-1 already fed with the namespace and "type|system|": each id then hashes only its value."""
    return hashlib.sha1(_NAMESPACE_BYTES + f"{resource_type}|{system}|".encode())


def resource_id(resource_type: str, system: str, value: str) -> str:
    """uuid5(ID_NAMESPACE, "type|system|value") as text: RFC 4122 by hand, 4x cheaper than uuid.uuid5 + str."""
    digest = _hasher(resource_type, system).copy()
    digest.update(value.encode())
    h = digest.hexdigest()
    # version 5 in the 13th hex digit; the RFC 4122 variant (binary 10xx) in the 17th
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def identifier(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


def reference(resource_type: str, rid: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{rid}"}


# The ids other resources point to, from the source keys alone (a reference never needs the target built first).


def organization_id(clinic_id: str) -> str:
    return resource_id("Organization", CLINIC, clinic_id)


@functools.cache
def patient_id(patient_key: str) -> str:
    return resource_id("Patient", PATIENT, patient_key)


@functools.cache
def encounter_id(session_id: str) -> str:
    return resource_id("Encounter", SESSION, session_id)


def medication_administration_id(session_id: str) -> str:
    return resource_id("MedicationAdministration", MEDICATION_ADMINISTRATION, session_id)


def observation_id(system: str, key: str) -> str:
    return resource_id("Observation", system, key)


# Shared, cached reference dicts: hundreds of thousands of resources point to a few thousand patients and
# sessions. Nothing may mutate a built resource in place (delivery copies before it rewrites references).


@functools.cache
def patient_ref(patient_key: str) -> dict[str, str]:
    return reference("Patient", patient_id(patient_key))


@functools.cache
def encounter_ref(session_id: str) -> dict[str, str]:
    return reference("Encounter", encounter_id(session_id))


@functools.cache
def organization_ref(clinic_id: str) -> dict[str, str]:
    return reference("Organization", organization_id(clinic_id))
