"""Organization (one per clinic) and Patient."""

from __future__ import annotations

import pandas as pd

from fhir_mappings import identity as ids
from fhir_mappings.mapped import Mapped, missing, not_in, source_batches, split_rows, unresolved, utc_text
from fhir_mappings.terminology import ORGANIZATION_TYPE

GENDERS = ("male", "female", "other", "unknown")  # administrative-gender, a required binding


def build_organizations(clinics: pd.DataFrame) -> Mapped:
    good, rejected = split_rows(
        clinics,
        [missing(clinics, "clinic_id"), missing(clinics, "name")],
        resource_type="Organization",
        source_table="clinics",
        key=clinics.get("clinic_id", pd.Series(dtype="string")),
        batch=clinics.get("batch_id"),
    )
    out = Mapped("Organization", rejections=rejected)
    has_state = good["state"].astype("string").str.strip().fillna("").ne("").tolist()
    for clinic, name, state, with_state, batch, updated in zip(
        good["clinic_id"].tolist(),
        good["name"].tolist(),
        good["state"].tolist(),
        has_state,
        source_batches(good),
        utc_text(good["updated_at"]),
        strict=True,
    ):
        resource = {
            "resourceType": "Organization",
            "id": ids.organization_id(clinic),
            "identifier": [ids.identifier(ids.CLINIC, clinic)],
            "active": True,
            "type": [{"coding": [{"system": ORGANIZATION_TYPE, "code": "prov", "display": "Healthcare Provider"}]}],
            "name": name,
        }
        if with_state:
            resource["address"] = [{"state": state, "country": "US"}]
        out.add(resource, ("Organization", with_state), None, batch, updated)
    return out


def build_patients(patients: pd.DataFrame, clinic_ids: set[str]) -> Mapped:
    """Patients: the clinic's MRN and the network's patient key; birth date and sex as the EHR holds them."""
    birth = pd.to_datetime(patients["birth_date"], errors="coerce")
    good, rejected = split_rows(
        patients,
        [
            missing(patients, "patient_id"),
            missing(patients, "mrn"),
            not_in(patients, "sex", GENDERS),
            unresolved(patients, "clinic_id", clinic_ids, "clinic"),
        ],
        resource_type="Patient",
        source_table="patients",
        key=patients["patient_id"],
        batch=patients.get("batch_id"),
    )
    out = Mapped("Patient", rejections=rejected)
    birth_text = birth[good.index].dt.strftime("%Y-%m-%d")
    has_birth = birth_text.notna().tolist()
    for key, clinic, mrn, sex, born, with_birth, batch, updated in zip(
        good["patient_id"].tolist(),
        good["clinic_id"].tolist(),
        good["mrn"].tolist(),
        good["sex"].tolist(),
        birth_text.tolist(),
        has_birth,
        source_batches(good),
        utc_text(good["updated_at"]),
        strict=True,
    ):
        resource = {
            "resourceType": "Patient",
            "id": ids.patient_id(key),
            "identifier": [
                ids.identifier(ids.PATIENT, key),
                {**ids.identifier(ids.mrn_system(clinic), mrn), "type": _MRN_TYPE},
            ],
            "gender": sex,
            "managingOrganization": ids.organization_ref(clinic),
        }
        if with_birth:
            resource["birthDate"] = born
        out.add(resource, ("Patient", with_birth), key, batch, updated)
    return out


_MRN_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
