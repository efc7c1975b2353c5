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
    """Staged EHR rows plus the EHR rows held in quarantine (marked `staged = False`): both are rows the EHR
    sent, so children pointing at them are linked; only ids the EHR never sent are unknown."""
    columns = {
        "infusion_sessions": ["session_id", "patient_id", "clinic_id", "started_at"],
        "patients": ["patient_id", "clinic_id", "mrn"],
        "clinics": ["clinic_id", "timezone"],
    }
    frames = {}
    for table, cols in columns.items():
        staged = lake.read_parquets(lake.staged_table(table))
        staged = (staged[cols] if not staged.empty else pd.DataFrame(columns=cols)).assign(staged=True)
        held = pd.DataFrame([{c: r.get(c) for c in cols} for r in _quarantined_rows(lake, table)], columns=cols)
        held = held[~held[cols[0]].isin(staged[cols[0]])].drop_duplicates(cols[0]).assign(staged=False)
        frames[table] = pd.concat([staged, held], ignore_index=True) if not held.empty else staged
    sessions = frames["infusion_sessions"]
    sessions["started_at"] = pd.to_datetime(sessions["started_at"], utc=True, format="mixed")
    return EhrReferences(sessions=sessions, patients=frames["patients"], clinics=frames["clinics"])
