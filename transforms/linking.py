"""Reference checks that tie each clinic system's rows to the EHR: readings and ratings to a known infusion
session, questionnaires to a known patient. A row that points nowhere is quarantined, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from transforms.quarantine import QuarantineRecord


@dataclass(frozen=True)
class EhrReferences:
    """What the staged EHR knows: sessions with their start, patients with their MRN, clinic time zones."""

    sessions: pd.DataFrame  # session_id, patient_id, clinic_id, started_at, staged
    patients: pd.DataFrame  # patient_id, clinic_id, mrn, staged
    clinics: pd.DataFrame  # clinic_id, timezone, staged

    def clinic_timezone(self, clinic_id: str) -> str | None:
        match = self.clinics.loc[self.clinics["clinic_id"] == clinic_id, "timezone"]
        return None if match.empty else str(match.iloc[0])


@dataclass
class Linked:
    rows: pd.DataFrame
    rejected: list[QuarantineRecord] = field(default_factory=list)


def _reject(
    rows: pd.DataFrame, mask: pd.Series, key: str, source: str, rule: str, reason: str
) -> list[QuarantineRecord]:
    picked = rows.loc[mask]
    return [
        QuarantineRecord(b, source, str(k), rule, "critical", reason, raw)
        for b, k, raw in zip(picked["batch_id"], picked[key], picked["raw_record"], strict=True)
    ]


def link_to_sessions(rows: pd.DataFrame, refs: EhrReferences, key: str, source: str, time_column: str) -> Linked:
    """Attach patient, clinic and minutes from the start of dosing; reject rows of sessions the EHR never sent.

    `session_staged` is False when the EHR session row itself is held in quarantine: the row is kept (it is
    valid on its own) and downstream views can tell that its session still needs fixing.
    """
    if rows.empty:
        return Linked(rows)
    sessions = refs.sessions[["session_id", "patient_id", "clinic_id", "started_at", "staged"]]
    merged = rows.merge(
        sessions.rename(columns={"staged": "session_staged"}), on="session_id", how="left", validate="many_to_one"
    )
    unknown = merged["patient_id"].isna()
    rejected = _reject(
        merged, unknown, key, source, "unknown_session", "the session id is not an infusion session the EHR sent"
    )
    linked = merged[~unknown].copy()
    linked["session_staged"] = linked["session_staged"].astype(bool)
    if "mrn" in linked:
        mrns = refs.patients.drop_duplicates("patient_id").set_index("patient_id")["mrn"]
        mismatch = linked["mrn"] != linked["patient_id"].map(mrns)
        rejected += _reject(
            linked,
            mismatch,
            key,
            source,
            "patient_mismatch",
            "PID-3 MRN differs from the MRN of the session's patient: the reading may be misfiled",
        )
        linked = linked[~mismatch].drop(columns=["mrn"])
    linked["minutes_from_start"] = (linked[time_column] - linked["started_at"]).dt.total_seconds() / 60.0
    return Linked(linked.drop(columns=["started_at"]), rejected)


def link_to_patients(rows: pd.DataFrame, refs: EhrReferences, key: str, source: str) -> Linked:
    """Questionnaires name their patient by MRN within a clinic's identifier system."""
    if rows.empty:
        return Linked(rows)
    patients = refs.patients[["patient_id", "clinic_id", "mrn"]].drop_duplicates(["clinic_id", "mrn"]).copy()
    patients["mrn_system"] = "urn:ketamine-network:" + patients["clinic_id"] + ":mrn"
    merged = rows.merge(patients, on=["mrn_system", "mrn"], how="left", validate="many_to_one")
    unknown = merged["patient_id"].isna()
    rejected = _reject(
        merged,
        unknown,
        key,
        source,
        "unknown_patient",
        "subject identifier does not match a patient MRN of that clinic in the EHR",
    )
    return Linked(merged[~unknown].drop(columns=["mrn", "mrn_system"]), rejected)
