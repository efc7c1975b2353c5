"""Load what the staged EHR knows (sessions, patients, clinics, quarantined keys) for reference checks."""

from __future__ import annotations

import json

import pandas as pd

from clinic_pipeline.lake import Lake
from transforms.linking import EhrReferences


def _quarantined_rows(lake: Lake, table: str) -> list[dict]:
    frame = lake.read_parquets(lake.path("quarantine", "ehr"))
    if frame.empty:
        return []
    prefix = f"{table}:"
    picked = frame[frame["row_key"].str.startswith(prefix)]
    return [json.loads(raw) for raw in picked["raw_record"]]


def load_references(lake: Lake) -> EhrReferences:
    sessions = lake.read_parquets(lake.staged_table("infusion_sessions"))
    if sessions.empty:
        sessions = pd.DataFrame(columns=["session_id", "patient_id", "clinic_id", "started_at"])
    sessions = sessions.assign(started_at=pd.to_datetime(sessions["started_at"], utc=True))
    patients = lake.read_parquets(lake.staged_table("patients"))
    patients = (patients[["patient_id", "clinic_id", "mrn"]] if not patients.empty
                else pd.DataFrame(columns=["patient_id", "clinic_id", "mrn"])).assign(staged=True)
    held = pd.DataFrame([{k: r[k] for k in ("patient_id", "clinic_id", "mrn")} for r in _quarantined_rows(lake, "patients")],
                        columns=["patient_id", "clinic_id", "mrn"])
    held = held[~held["patient_id"].isin(patients["patient_id"])].drop_duplicates("patient_id").assign(staged=False)
    clinics = lake.read_parquets(lake.staged_table("clinics"))
    if clinics.empty:
        clinics = pd.DataFrame(columns=["clinic_id", "timezone"])
    quarantined_sessions = {r["session_id"] for r in _quarantined_rows(lake, "infusion_sessions")}
    return EhrReferences(
        sessions=sessions[["session_id", "patient_id", "clinic_id", "started_at"]],
        patients=pd.concat([patients, held], ignore_index=True) if not held.empty else patients,
        clinics=clinics[["clinic_id", "timezone"]],
        quarantined_sessions=frozenset(quarantined_sessions - set(sessions["session_id"])),
    )
