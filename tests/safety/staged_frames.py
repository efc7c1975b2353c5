"""Small hand-written staged tables for held-out clinical scenarios (same columns and types as the lake's).

Every scenario starts its session at T0 (UTC); readings are given as (minute from the start of dosing,
SBP, DBP, HR, SpO2) and MAP is derived as (SBP + 2 DBP) / 3, as a monitor reports it.
"""

from __future__ import annotations

import pandas as pd

from clinic_pipeline.safety.staged_tables import SCHEMAS, empty_table

T0 = pd.Timestamp("2026-03-02 15:00", tz="UTC")


def minutes(m: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=m)


def typed(table: str, rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows) if rows else empty_table(table)
    for column, dtype in SCHEMAS[table].items():
        if column not in frame:
            frame[column] = pd.Series(dtype=dtype, index=frame.index)
    return frame


def session(
    session_id: str,
    protocol: str = "iv_depression",
    *,
    patient_id: str = "P1",
    clinic_id: str = "C001",
    infusion_number: int = 1,
    infusion_min: float = 40,
    discharge_min: float = 90,
    start: pd.Timestamp = T0,
) -> dict:
    return {
        "session_id": session_id,
        "patient_id": patient_id,
        "clinic_id": clinic_id,
        "protocol": protocol,
        "drug": "esketamine" if protocol == "esketamine" else "ketamine",
        "route": "IV",
        "dose_mg_per_kg": 0.5,
        "dose_mg": 40.0,
        "infusion_number": infusion_number,
        "is_booster": int(infusion_number > 6),
        "started_at": start,
        "infusion_ended_at": start + pd.Timedelta(minutes=infusion_min),
        "discharged_at": start + pd.Timedelta(minutes=discharge_min),
        "status": "completed",
        "updated_at": start,
    }


def readings(
    session_id: str, rows: list[tuple[float, float, float, float, float]], start: pd.Timestamp = T0
) -> list[dict]:
    return [
        {
            "session_id": session_id,
            "observed_at": start + pd.Timedelta(minutes=m),
            "control_id": f"{session_id}-{i:03d}",
            "sbp_mmhg": float(s),
            "dbp_mmhg": float(d),
            "map_mmhg": round((s + 2 * d) / 3),
            "hr_bpm": float(h),
            "spo2_pct": float(o),
            "minutes_from_start": float(m),
            "clinic_id": "C001",
            "batch_id": "monitor-C001-20260302",
        }
        for i, (m, s, d, h, o) in enumerate(rows)
    ]


def steady(session_id: str, minutes_list: list[float], sbp: float = 125, dbp: float = 80) -> list[dict]:
    """Unremarkable readings at the given minutes."""
    return readings(session_id, [(m, sbp, dbp, 75, 97) for m in minutes_list])


def tables(**given: list[dict]) -> dict[str, pd.DataFrame]:
    """All staged tables the marts read, the given ones filled, the rest empty."""
    return {name: typed(name, given.get(name, [])) for name in SCHEMAS}
