"""EHR rows -> staged tables: typed, UTC, canonical units, references checked.

Patient names are never read from the EHR (data minimisation): the pipeline needs the MRN to link systems,
the birth date for age and the weight for dose checks, not who the patient is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from transforms.quarantine import QuarantineRecord
from transforms.units import unit_rule

SOURCE = "ehr"
KEYS = {
    "clinics": "clinic_id",
    "patients": "patient_id",
    "concomitant_medications": "medication_id",
    "infusion_sessions": "session_id",
    "adverse_events": "ae_id",
}
EHR_COLUMNS = {  # what the pipeline reads; anything else in the EHR stays there
    "clinics": ["clinic_id", "name", "timezone", "state", "collects_madrs", "updated_at"],
    "patients": [
        "patient_id",
        "clinic_id",
        "mrn",
        "redcap_record_id",
        "birth_date",
        "sex",
        "weight_value",
        "weight_unit",
        "height_cm",
        "indication",
        "primary_diagnosis_icd10",
        "hx_hypertension",
        "hx_substance_use",
        "hx_cardiovascular",
        "enrolled_on",
        "updated_at",
    ],
    "concomitant_medications": ["medication_id", "patient_id", "drug_class", "drug_name", "recorded_on", "updated_at"],
    "infusion_sessions": [
        "session_id",
        "patient_id",
        "clinic_id",
        "protocol",
        "drug",
        "route",
        "dose_mg_per_kg",
        "dose_mg",
        "infusion_number",
        "is_booster",
        "started_at",
        "infusion_ended_at",
        "discharged_at",
        "status",
        "updated_at",
    ],
    "adverse_events": [
        "ae_id",
        "session_id",
        "patient_id",
        "term",
        "term_label",
        "code_system",
        "code",
        "onset_at",
        "resolved_at",
        "ctcae_grade",
        "ctcae_version",
        "serious",
        "seriousness_criteria",
        "relatedness",
        "action_taken",
        "outcome",
        "updated_at",
    ],
}
TIMESTAMPS = ["updated_at", "started_at", "infusion_ended_at", "discharged_at", "onset_at", "resolved_at"]


@dataclass
class StagedTable:
    table: str
    rows: pd.DataFrame  # staged candidates (still to pass the quality gate), with batch_id and raw_record
    rejected: list[QuarantineRecord] = field(default_factory=list)
    conversions: dict[str, int] = field(default_factory=dict)


def utc_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """EHR timestamps are UTC by contract; SQLite returns them naive, PostgreSQL aware: make both aware UTC."""
    out = frame.copy()
    for column in TIMESTAMPS:
        if column in out:
            out[column] = pd.to_datetime(out[column], utc=True, format="mixed")
    return out


def _raw_records(frame: pd.DataFrame) -> list[str]:
    return [json.dumps(r, default=str, separators=(",", ":")) for r in frame.to_dict("records")]


def prepare(table: str, frame: pd.DataFrame, batch_id: str) -> pd.DataFrame:
    """Common typing for every EHR table: UTC timestamps, batch id and the raw record kept for replay."""
    out = utc_columns(frame)
    out["raw_record"] = _raw_records(frame)
    out["batch_id"] = batch_id
    return out


def _reject(
    table: str, batch_id: str, frame: pd.DataFrame, mask: pd.Series, rule: str, reason: str
) -> list[QuarantineRecord]:
    key = KEYS[table]
    return [
        QuarantineRecord(batch_id, SOURCE, f"{table}:{k}", rule, "critical", reason, raw)
        for k, raw in zip(frame.loc[mask, key], frame.loc[mask, "raw_record"], strict=True)
    ]


def stage_patients(frame: pd.DataFrame, batch_id: str) -> StagedTable:
    rows = prepare("patients", frame, batch_id)
    result = StagedTable("patients", rows)
    weights = []
    unknown = []
    for value, unit in zip(rows["weight_value"], rows["weight_unit"], strict=True):
        rule = unit_rule("LOCAL", str(unit)) if unit is not None else unit_rule("LOCAL", "kg")
        if rule is None or rule.canonical_unit != "kg":
            unknown.append(True)
            weights.append(None)
            continue
        unknown.append(False)
        if rule.is_conversion and pd.notna(value):
            key = f"weight:LOCAL:{unit}->kg"
            result.conversions[key] = result.conversions.get(key, 0) + 1
        weights.append(None if pd.isna(value) else round(rule.apply(float(value)), 1))
    rows["weight_kg"] = pd.array(weights, dtype="Float64")
    bad_unit = pd.Series(unknown, index=rows.index)
    result.rejected += _reject("patients", batch_id, rows, bad_unit, "unit_unknown", "weight unit is not kg or lb")
    rows["birth_date"] = pd.to_datetime(rows["birth_date"]).dt.date
    rows["enrolled_on"] = pd.to_datetime(rows["enrolled_on"]).dt.date
    result.rows = rows[~bad_unit].drop(columns=["weight_value", "weight_unit"])
    return result


def stage_by_reference(table: str, frame: pd.DataFrame, batch_id: str, column: str, known: set[str]) -> StagedTable:
    """Rows whose `column` must name a parent row the EHR sent (a session's patient, an event's session).

    A parent that is itself in quarantine still counts as known: its problem is already held and named, and
    holding every child too would hide valid sessions and events from safety review.
    """
    rows = prepare(table, frame, batch_id)
    result = StagedTable(table, rows)
    unknown = ~rows[column].isin(known)
    result.rejected += _reject(
        table,
        batch_id,
        rows,
        unknown,
        f"unknown_{column.removesuffix('_id')}",
        f"{column} does not name a row the EHR sent",
    )
    result.rows = rows[~unknown]
    return result


def upsert(existing: pd.DataFrame, incoming: pd.DataFrame, key: str) -> pd.DataFrame:
    """Late corrections replace the staged row with the same key (newest `updated_at` wins), never duplicate it."""
    if existing.empty:
        combined = incoming
    else:
        combined = pd.concat([existing, incoming.astype(existing.dtypes.to_dict(), errors="ignore")], ignore_index=True)
    return (
        combined.sort_values(["updated_at", key], kind="stable")
        .drop_duplicates(key, keep="last")
        .reset_index(drop=True)
    )
