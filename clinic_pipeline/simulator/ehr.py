"""The clinic network's EHR / practice-management database.

Plain SQL tables (SQLite by default, any SQLAlchemy URL such as PostgreSQL). All timestamps are UTC.
Every table has `updated_at`, set when a row is inserted or corrected, so it can be read incrementally.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from clinic_pipeline.simulator.network import Clinic, Patient
from clinic_pipeline.simulator.sessions import AdverseEvent, Session

metadata = sa.MetaData()
UTC_TS = sa.DateTime(timezone=True)

clinics = sa.Table(
    "clinics",
    metadata,
    sa.Column("clinic_id", sa.String(8), primary_key=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("timezone", sa.String(40), nullable=False),
    sa.Column("state", sa.String(2), nullable=False),
    sa.Column("collects_madrs", sa.Boolean, nullable=False),
    sa.Column("updated_at", UTC_TS, nullable=False, index=True),
)
patients = sa.Table(
    "patients",
    metadata,
    sa.Column("patient_id", sa.String(24), primary_key=True),
    sa.Column("clinic_id", sa.String(8), nullable=False),
    sa.Column("mrn", sa.String(16), nullable=False),
    sa.Column("redcap_record_id", sa.String(16), nullable=False),
    sa.Column("family_name", sa.String(60), nullable=False),
    sa.Column("given_name", sa.String(60), nullable=False),
    sa.Column("birth_date", sa.Date, nullable=False),
    sa.Column("sex", sa.String(10), nullable=False),
    sa.Column("weight_value", sa.Float),
    sa.Column("weight_unit", sa.String(8)),  # "kg" or "lb" as typed at intake
    sa.Column("height_cm", sa.Float),
    sa.Column("indication", sa.String(20), nullable=False),
    sa.Column("primary_diagnosis_icd10", sa.String(10), nullable=False),
    sa.Column("hx_hypertension", sa.Boolean, nullable=False),
    sa.Column("hx_substance_use", sa.Boolean, nullable=False),
    sa.Column("hx_cardiovascular", sa.Boolean, nullable=False),
    sa.Column("enrolled_on", sa.Date, nullable=False),
    sa.Column("updated_at", UTC_TS, nullable=False, index=True),
)
infusion_sessions = sa.Table(
    "infusion_sessions",
    metadata,
    sa.Column("session_id", sa.String(32), primary_key=True),
    sa.Column("patient_id", sa.String(24), nullable=False),
    sa.Column("clinic_id", sa.String(8), nullable=False),
    sa.Column("protocol", sa.String(20), nullable=False),
    sa.Column("drug", sa.String(20), nullable=False),
    sa.Column("route", sa.String(8), nullable=False),
    sa.Column("dose_mg_per_kg", sa.Float),
    sa.Column("dose_mg", sa.Float),
    sa.Column("infusion_number", sa.Integer, nullable=False),
    sa.Column("is_booster", sa.Boolean, nullable=False),
    sa.Column("started_at", UTC_TS),
    sa.Column("infusion_ended_at", UTC_TS),
    sa.Column("discharged_at", UTC_TS),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_at", UTC_TS, nullable=False, index=True),
)
adverse_events = sa.Table(
    "adverse_events",
    metadata,
    sa.Column("ae_id", sa.String(40), primary_key=True),
    sa.Column("session_id", sa.String(32), nullable=False),
    sa.Column("patient_id", sa.String(24), nullable=False),
    sa.Column("term", sa.String(40)),
    sa.Column("term_label", sa.String(60)),
    sa.Column("code_system", sa.String(10)),
    sa.Column("code", sa.String(30)),
    sa.Column("onset_at", UTC_TS),
    sa.Column("resolved_at", UTC_TS),
    sa.Column("ctcae_grade", sa.Integer),
    sa.Column("ctcae_version", sa.String(8)),
    sa.Column("serious", sa.Boolean, nullable=False),
    sa.Column("seriousness_criteria", sa.String(120), nullable=False),  # comma-separated ICH E2A criteria
    sa.Column("relatedness", sa.String(20), nullable=False),
    sa.Column("action_taken", sa.String(20), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("updated_at", UTC_TS, nullable=False, index=True),
)
concomitant_medications = sa.Table(
    "concomitant_medications",
    metadata,
    sa.Column("medication_id", sa.String(32), primary_key=True),
    sa.Column("patient_id", sa.String(24), nullable=False),
    sa.Column("drug_class", sa.String(20), nullable=False),
    sa.Column("drug_name", sa.String(40), nullable=False),
    sa.Column("recorded_on", sa.Date, nullable=False),
    sa.Column("updated_at", UTC_TS, nullable=False, index=True),
)
TABLES = {t.name: t for t in metadata.sorted_tables}


def utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC)


def clinic_row(clinic: Clinic, written: dt.datetime) -> dict[str, Any]:
    return {
        "clinic_id": clinic.clinic_id,
        "name": clinic.name,
        "timezone": clinic.timezone,
        "state": clinic.state,
        "collects_madrs": clinic.uses_madrs,
        "updated_at": written,
    }


def patient_row(patient: Patient, enrolled_on: dt.date, written: dt.datetime) -> dict[str, Any]:
    return {
        "patient_id": patient.patient_id,
        "clinic_id": patient.clinic.clinic_id,
        "mrn": patient.mrn,
        "redcap_record_id": patient.redcap_record_id,
        "family_name": patient.family_name,
        "given_name": patient.given_name,
        "birth_date": patient.birth_date,
        "sex": patient.sex,
        "weight_value": patient.weight_kg,
        "weight_unit": "kg",
        "height_cm": patient.height_cm,
        "indication": patient.indication,
        "primary_diagnosis_icd10": patient.icd10,
        "hx_hypertension": patient.hx_hypertension,
        "hx_substance_use": patient.hx_substance_use,
        "hx_cardiovascular": patient.hx_cardiovascular,
        "enrolled_on": enrolled_on,
        "updated_at": written,
    }


def medication_rows(patient: Patient, recorded_on: dt.date, written: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "medication_id": f"{patient.patient_id}-M{i}",
            "patient_id": patient.patient_id,
            "drug_class": cls,
            "drug_name": name,
            "recorded_on": recorded_on,
            "updated_at": written,
        }
        for i, (cls, name) in enumerate(patient.concomitant_medications, start=1)
    ]


def session_row(session: Session, written: dt.datetime) -> dict[str, Any]:
    stopped = any(e.action_taken in ("stopped", "ed_transfer") for e in session.adverse_events)
    return {
        "session_id": session.session_id,
        "patient_id": session.patient.patient_id,
        "clinic_id": session.patient.clinic.clinic_id,
        "protocol": session.protocol,
        "drug": session.drug,
        "route": session.route,
        "dose_mg_per_kg": session.dose_mg_per_kg,
        "dose_mg": session.dose_mg,
        "infusion_number": session.plan.infusion_number,
        "is_booster": session.plan.is_booster,
        "started_at": utc(session.started_at),
        "infusion_ended_at": utc(session.infusion_end_at),
        "discharged_at": utc(session.discharged_at),
        "status": "stopped_early" if stopped else "completed",
        "updated_at": written,
    }


def adverse_event_row(
    session: Session, event: AdverseEvent, outcome: str, written: dt.datetime, ctcae_version: str
) -> dict[str, Any]:
    onset = utc(session.started_at) + dt.timedelta(minutes=event.onset_min)
    resolved_min = event.resolved_min
    if outcome == "recovered" and resolved_min is None:  # a late correction closes the event
        resolved_min = event.onset_min + 240
    return {
        "ae_id": event.ae_id,
        "session_id": session.session_id,
        "patient_id": session.patient.patient_id,
        "term": event.term,
        "term_label": event.label,
        "code_system": event.code_system,
        "code": event.code,
        "onset_at": onset,
        "resolved_at": None if resolved_min is None else utc(session.started_at) + dt.timedelta(minutes=resolved_min),
        "ctcae_grade": event.grade,
        "ctcae_version": ctcae_version,
        "serious": event.serious,
        "seriousness_criteria": ",".join(event.seriousness_criteria),
        "relatedness": event.relatedness,
        "action_taken": event.action_taken,
        "outcome": outcome,
        "updated_at": written,
    }


def create_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    return engine


def upsert_rows(conn: sa.Connection, table_name: str, rows: list[dict[str, Any]]) -> None:
    """Insert new rows and overwrite corrected ones (by primary key), the way an EHR saves an edit."""
    if not rows:
        return
    table = TABLES[table_name]
    key = next(iter(table.primary_key.columns)).name
    keys = [r[key] for r in rows]
    existing = set()
    for chunk in range(0, len(keys), 500):
        existing.update(
            conn.execute(sa.select(table.c[key]).where(table.c[key].in_(keys[chunk : chunk + 500]))).scalars()
        )
    inserts = [r for r in rows if r[key] not in existing]
    if inserts:
        conn.execute(table.insert(), inserts)
    for row in rows:
        if row[key] in existing:
            conn.execute(table.update().where(table.c[key] == row[key]).values(**row))
