"""The FHIR R4 rules that fhir.resources does not check: required value sets, the vital-signs profiles, UCUM units.

fhir.resources validates structure (element names, cardinality of required elements, JSON types, primitive
formats). It accepts `status: "finished"` on an Observation, a blood-pressure panel without its diastolic
component and `mmHg` where UCUM says `mm[Hg]`. These checks cover that, on plain dicts, for any resource that
leaves the pipeline or that `clinic-pipeline validate-fhir` reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fhir_mappings.terminology import (
    AE_OUTCOME,
    AE_SEVERITY,
    LOINC,
    OBSERVATION_CATEGORY,
    UCUM,
    ucum_units,
    vital_signs,
)

ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# Required bindings (R4 4.0.1; identical in R4B for these resources).
REQUIRED_CODES: dict[tuple[str, str], frozenset[str]] = {
    ("Observation", "status"): frozenset(
        ["registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"]
    ),
    ("Encounter", "status"): frozenset(
        [
            "planned",
            "arrived",
            "triaged",
            "in-progress",
            "onleave",
            "finished",
            "cancelled",
            "entered-in-error",
            "unknown",
        ]
    ),
    ("MedicationAdministration", "status"): frozenset(
        ["in-progress", "not-done", "on-hold", "completed", "entered-in-error", "stopped", "unknown"]
    ),
    ("QuestionnaireResponse", "status"): frozenset(
        ["in-progress", "completed", "amended", "entered-in-error", "stopped"]
    ),
    ("AdverseEvent", "actuality"): frozenset(["actual", "potential"]),
    ("Patient", "gender"): frozenset(["male", "female", "other", "unknown"]),
    ("Bundle", "type"): frozenset(
        [
            "document",
            "message",
            "transaction",
            "transaction-response",
            "batch",
            "batch-response",
            "history",
            "searchset",
            "collection",
        ]
    ),
}
CODED_REQUIRED: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    ("AdverseEvent", "severity"): (AE_SEVERITY, frozenset(["mild", "moderate", "severe"])),
    ("AdverseEvent", "outcome"): (
        AE_OUTCOME,
        frozenset(["resolved", "recovering", "ongoing", "resolvedWithSequelae", "fatal", "unknown"]),
    ),
}
PROVENANCE_ENTITY_ROLES = frozenset(["derivation", "revision", "quotation", "source", "removal"])
SUSPECT_TYPES = frozenset(
    [
        "Immunization",
        "Procedure",
        "Substance",
        "Medication",
        "MedicationAdministration",
        "MedicationStatement",
        "Device",
    ]
)

# observation-vitalsignresult value set and ucum-vitals-common (both bound in the R4 vitalsigns profile).
VITAL_SIGN_CODES = frozenset(
    [
        "85353-1",
        "9279-1",
        "8867-4",
        "2708-6",
        "8310-5",
        "8302-2",
        "9843-4",
        "29463-7",
        "39156-5",
        "85354-9",
        "8480-6",
        "8462-4",
        "8478-0",
    ]
)
VITALS_COMMON_UNITS = frozenset(
    ["%", "cm", "[in_i]", "kg", "g", "[lb_av]", "Cel", "[degF]", "mm[Hg]", "/min", "kg/m2", "m2"]
)
VITALS_PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
# The specific profiles fix the unit: LOINC code -> allowed UCUM codes.
PROFILE_UNITS = {
    "8867-4": frozenset(["/min"]),
    "2708-6": frozenset(["%"]),
    "9279-1": frozenset(["/min"]),
    "29463-7": frozenset(["kg", "g", "[lb_av]"]),
    "8310-5": frozenset(["Cel", "[degF]"]),
    "8480-6": frozenset(["mm[Hg]"]),
    "8462-4": frozenset(["mm[Hg]"]),
}
BLOOD_PRESSURE, SYSTOLIC, DIASTOLIC = "85354-9", "8480-6", "8462-4"


def problems(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, message) for every rule the resource breaks; empty when it conforms."""
    found: list[tuple[str, str]] = []
    rtype = resource.get("resourceType", "")
    rid = resource.get("id")
    if rid is not None and not (isinstance(rid, str) and ID.match(rid)):
        found.append(("id", "id must be 1-64 characters of A-Z a-z 0-9 - ."))
    for (type_, element), allowed in REQUIRED_CODES.items():
        if rtype == type_ and element in resource and resource[element] not in allowed:
            found.append((element, f"{resource[element]!r} is not in the required value set"))
    for (type_, element), (system, allowed) in CODED_REQUIRED.items():
        if rtype == type_ and element in resource:
            codings = [c for c in resource[element].get("coding", []) if c.get("system") == system]
            if not codings or any(c.get("code") not in allowed for c in codings):
                found.append((element, f"needs a coding from {system} with a code in its required value set"))
    for path, quantity in _quantities(resource, rtype) if rtype != "Bundle" else ():  # entries are checked alone
        if quantity.get("system") == UCUM and quantity.get("code") not in ucum_units():
            found.append((path, f"UCUM code {quantity.get('code')!r} is not a unit this profile allows"))
        if "code" in quantity and quantity.get("system") != UCUM:
            found.append((path, "a coded quantity must use UCUM (http://unitsofmeasure.org)"))
    if rtype == "Observation" and _is_vital_sign(resource):
        found += _vital_sign_problems(resource)
    if rtype == "AdverseEvent":
        for i, suspect in enumerate(resource.get("suspectEntity", [])):
            target = suspect.get("instance", {}).get("reference", "").split("/")[0]
            if target and target not in SUSPECT_TYPES and not target.startswith("urn:"):
                found.append((f"suspectEntity[{i}].instance", f"a {target} cannot be a suspect entity"))
    if rtype == "Provenance":
        for i, entity in enumerate(resource.get("entity", [])):
            if entity.get("role") not in PROVENANCE_ENTITY_ROLES:
                found.append((f"entity[{i}].role", "not in the required value set provenance-entity-role"))
    return found


def _quantities(node: Any, path: str) -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}"
            quantity = (key.startswith("value") and key.endswith("Quantity")) or key in ("dose", "rateQuantity")
            if quantity and isinstance(value, dict):
                yield child, value
            else:
                yield from _quantities(value, child)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _quantities(value, f"{path}[{i}]")


def _loinc_codes(concept: dict) -> list[str]:
    return [c.get("code", "") for c in concept.get("coding", []) if c.get("system") == LOINC]


def _is_vital_sign(obs: dict) -> bool:
    categories = [c for cat in obs.get("category", []) for c in cat.get("coding", [])]
    profiles = obs.get("meta", {}).get("profile", [])
    return any(c.get("code") == "vital-signs" for c in categories) or any(
        p == VITALS_PROFILE or p in _specific_profiles() for p in profiles
    )


def _specific_profiles() -> dict[str, str]:
    """Profile URL -> the LOINC code it fixes."""
    return {s.profile: s.loinc for s in vital_signs().values() if s.profile}


def _vital_sign_problems(obs: dict) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    categories = [c for cat in obs.get("category", []) for c in cat.get("coding", [])]
    if not any(c.get("system") == OBSERVATION_CATEGORY and c.get("code") == "vital-signs" for c in categories):
        found.append(("category", "vital-signs profile: needs the VSCat coding (observation-category#vital-signs)"))
    codes = _loinc_codes(obs.get("code", {}))
    if not any(code in VITAL_SIGN_CODES for code in codes):
        found.append(("code", "vital-signs profile: needs a LOINC code from observation-vitalsignresult"))
    if not obs.get("subject", {}).get("reference", "").startswith(("Patient/", "urn:uuid:")):
        found.append(("subject", "vital-signs profile: subject must reference a Patient"))
    when = obs.get("effectiveDateTime")
    if when is None and "effectivePeriod" not in obs:
        found.append(("effective[x]", "vital-signs profile: effectiveDateTime or effectivePeriod is required"))
    elif isinstance(when, str) and len(when) < 10:
        found.append(("effectiveDateTime", "vs-1: a dateTime must be at least a full day"))
    components = obs.get("component", [])
    has_value = any(k.startswith("value") for k in obs)
    if not components and not obs.get("hasMember") and not has_value and "dataAbsentReason" not in obs:
        found.append(("value[x]", "vs-2: value[x] or dataAbsentReason is required without components or members"))
    if has_value and "dataAbsentReason" in obs:
        found.append(("dataAbsentReason", "obs-6: dataAbsentReason only when there is no value"))
    for path, quantity, code in _measured(obs, codes):
        if quantity is None:
            continue
        if quantity.get("system") != UCUM or quantity.get("code") not in VITALS_COMMON_UNITS:
            found.append((path, "vital-signs profile: the unit must be a UCUM code from ucum-vitals-common"))
        elif code in PROFILE_UNITS and quantity.get("code") not in PROFILE_UNITS[code]:
            found.append((path, f"{code}: the unit must be one of {sorted(PROFILE_UNITS[code])}"))
        if "value" not in quantity:
            found.append((path, "vital-signs profile: a measured quantity needs a value"))
    for i, component in enumerate(components):
        if not any(k.startswith("value") for k in component) and "dataAbsentReason" not in component:
            found.append((f"component[{i}]", "vs-3: each component needs value[x] or dataAbsentReason"))
    if BLOOD_PRESSURE in codes:
        component_codes = [code for c in components for code in _loinc_codes(c.get("code", {}))]
        for required, name in ((SYSTOLIC, "systolic"), (DIASTOLIC, "diastolic")):
            if component_codes.count(required) != 1:
                found.append(("component", f"bp profile: exactly one {name} component ({required}) is required"))
        if has_value:
            found.append(("value[x]", "bp profile: the panel carries its values in components only"))
    profiles = obs.get("meta", {}).get("profile", [])
    for profile in profiles:
        fixed = _specific_profiles().get(profile)
        if fixed is not None and fixed not in codes:
            found.append(("meta.profile", f"{profile} requires the LOINC code {fixed}"))
    return found


def _measured(obs: dict, codes: list[str]) -> Iterator[tuple[str, dict | None, str]]:
    for code in codes:
        if "valueQuantity" in obs:
            yield "valueQuantity", obs["valueQuantity"], code
    for i, component in enumerate(obs.get("component", [])):
        for code in _loinc_codes(component.get("code", {})) or [""]:
            yield f"component[{i}].valueQuantity", component.get("valueQuantity"), code
