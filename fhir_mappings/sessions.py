"""One infusion session -> an Encounter, a MedicationAdministration and the body weight the dose was based on."""

from __future__ import annotations

import pandas as pd

from fhir_mappings import identity as ids
from fhir_mappings.mapped import (
    Mapped,
    RowCheck,
    missing,
    not_finite,
    not_in,
    source_batches,
    split_rows,
    unresolved,
    utc_text,
)
from fhir_mappings.terminology import (
    ACT_CODE,
    EXTENSIONS,
    LOCAL_CODES,
    RXNORM,
    SNOMED,
    UCUM,
    medications,
    protocols,
    routes,
    session_statuses,
)
from fhir_mappings.vital_signs import observation

AMBULATORY = {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"}
INFUSION_NUMBER = f"{EXTENSIONS}/infusion-number"
BOOSTER = f"{EXTENSIONS}/booster-infusion"
DOSE_PER_KG = f"{EXTENSIONS}/dose-per-body-weight"


def dosing_weight_id(session_id: str) -> str:
    return ids.observation_id(ids.DOSING_WEIGHT, session_id)


def session_rows(sessions: pd.DataFrame, patient_keys: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions every session resource can be built from, and rejections for the rest (one per session)."""
    started, ended = sessions["started_at"], sessions["infusion_ended_at"]
    checks = [
        missing(sessions, "session_id"),
        missing(sessions, "started_at"),
        not_in(sessions, "status", session_statuses()),
        not_in(sessions, "protocol", protocols()),
        not_in(sessions, "drug", medications()),
        not_in(sessions, "route", routes()),
        not_finite(sessions, "dose_mg"),
        not_finite(sessions, "dose_mg_per_kg"),
        RowCheck("period", "infusion_ended_at is before started_at", ended.notna() & (ended < started)),
        RowCheck("period", "discharged_at is before started_at", sessions["discharged_at"] < started),
        unresolved(sessions, "patient_id", patient_keys, "patient"),
    ]
    return split_rows(
        sessions,
        checks,
        resource_type="Encounter",
        source_table="infusion_sessions",
        key=sessions["session_id"],
        batch=sessions.get("batch_id"),
    )


def build_encounters(sessions: pd.DataFrame) -> Mapped:
    out = Mapped("Encounter")
    discharged = sessions["discharged_at"].notna().tolist()
    for key, patient, clinic, status, protocol, number, booster, start, end, with_end, batch, updated in zip(
        sessions["session_id"].tolist(),
        sessions["patient_id"].tolist(),
        sessions["clinic_id"].tolist(),
        sessions["status"].tolist(),
        sessions["protocol"].tolist(),
        sessions["infusion_number"].astype("int64").tolist(),
        sessions["is_booster"].astype(bool).tolist(),
        utc_text(sessions["started_at"]),
        utc_text(sessions["discharged_at"]),
        discharged,
        source_batches(sessions),
        utc_text(sessions["updated_at"]),
        strict=True,
    ):
        period = {"start": start, "end": end} if with_end else {"start": start}
        encounter = {
            "resourceType": "Encounter",
            "id": ids.encounter_id(key),
            "extension": [
                {"url": INFUSION_NUMBER, "valueInteger": number},
                {"url": BOOSTER, "valueBoolean": booster},
            ],
            "identifier": [ids.identifier(ids.SESSION, key)],
            "status": session_statuses()[status][0],
            "class": AMBULATORY,
            "type": [
                {
                    "coding": [
                        {
                            "system": f"{LOCAL_CODES}/infusion-protocol",
                            "code": protocol,
                            "display": protocols()[protocol],
                        }
                    ],
                    "text": protocols()[protocol],
                }
            ],
            "subject": ids.patient_ref(patient),
            "period": period,
            "serviceProvider": ids.organization_ref(clinic),
        }
        out.add(encounter, ("Encounter", with_end), patient, batch, updated)
    return out


def build_dosing_weights(sessions: pd.DataFrame, weight_kg: pd.Series) -> Mapped:
    """The body weight the dose was calculated from (the EHR's weight of the patient), one per session."""
    weighed = sessions.assign(weight_kg=sessions["patient_id"].map(weight_kg))
    weighed = weighed[weighed["weight_kg"].notna()]
    out = Mapped("Observation")
    for key, patient, when, value, batch, updated in zip(
        weighed["session_id"].tolist(),
        weighed["patient_id"].tolist(),
        utc_text(weighed["started_at"]),
        weighed["weight_kg"].astype("float64").round(2).tolist(),
        source_batches(weighed),
        utc_text(weighed["updated_at"]),
        strict=True,
    ):
        subject, encounter = f"Patient/{ids.patient_id(patient)}", f"Encounter/{ids.encounter_id(key)}"
        rid = dosing_weight_id(key)
        out.add(
            observation("body_weight", ids.DOSING_WEIGHT, rid, key, subject, encounter, when, value),
            ("Observation", "body_weight"),
            patient,
            batch,
            updated,
        )
    return out


def build_medication_administrations(sessions: pd.DataFrame, weighed: set[str]) -> Mapped:
    out = Mapped("MedicationAdministration")
    ended = sessions["infusion_ended_at"].notna().tolist()
    for key, patient, status, drug, route, dose, per_kg, start, end, with_end, batch, updated in zip(
        sessions["session_id"].tolist(),
        sessions["patient_id"].tolist(),
        sessions["status"].tolist(),
        sessions["drug"].tolist(),
        sessions["route"].tolist(),
        sessions["dose_mg"].round(3).tolist(),
        sessions["dose_mg_per_kg"].round(3).tolist(),
        utc_text(sessions["started_at"]),
        utc_text(sessions["infusion_ended_at"]),
        ended,
        source_batches(sessions),
        utc_text(sessions["updated_at"]),
        strict=True,
    ):
        rxnorm, drug_display = medications()[drug]
        route_code, route_display = routes()[route]
        resource = {
            "resourceType": "MedicationAdministration",
            "id": ids.medication_administration_id(key),
            "extension": [
                {
                    "url": DOSE_PER_KG,
                    "valueQuantity": {"value": per_kg, "unit": "mg/kg", "system": UCUM, "code": "mg/kg"},
                }
            ],
            "identifier": [ids.identifier(ids.MEDICATION_ADMINISTRATION, key)],
            "status": session_statuses()[status][1],
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM, "code": rxnorm, "display": drug_display}],
                "text": drug_display,
            },
            "subject": ids.patient_ref(patient),
            "context": ids.encounter_ref(key),
            "effectivePeriod": {"start": start, "end": end} if with_end else {"start": start},
            "dosage": {
                "text": f"{dose:g} mg ({per_kg:g} mg/kg), {route_display.lower()}",
                "route": {"coding": [{"system": SNOMED, "code": route_code, "display": route_display}]},
                "dose": {"value": dose, "unit": "mg", "system": UCUM, "code": "mg"},
            },
        }
        with_weight = key in weighed
        if with_weight:
            resource["supportingInformation"] = [ids.reference("Observation", dosing_weight_id(key))]
        out.add(resource, ("MedicationAdministration", with_end, with_weight), patient, batch, updated)
    return out
