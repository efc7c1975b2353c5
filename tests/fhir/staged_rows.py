"""A few staged rows written by hand: one clinic, one patient, one IV session with one reading, one PHQ-9,
one CADSS rating and one staff-recorded adverse event (the inputs of the golden tests)."""

from __future__ import annotations

import json

import pandas as pd

from clinic_pipeline.fhir.export import STAGED_TABLES
from fhir_mappings.network import StagedNetwork


def t(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def staged_rows() -> StagedNetwork:
    session = "C001-P00007-I002"
    return StagedNetwork(
        clinics=pd.DataFrame(
            [
                {
                    "clinic_id": "C001",
                    "name": "Asheville Ketamine Center",
                    "state": "NC",
                    "updated_at": t("2026-01-05 12:00"),
                    "batch_id": "ehr-20260105T120000",
                }
            ]
        ),
        patients=pd.DataFrame(
            [
                {
                    "patient_id": "C001-P00007",
                    "clinic_id": "C001",
                    "mrn": "010000007",
                    "birth_date": pd.Timestamp("1980-02-29").date(),
                    "sex": "female",
                    "weight_kg": 70.0,
                    "updated_at": t("2026-01-05 12:00"),
                    "batch_id": "ehr-20260105T120000",
                }
            ]
        ),
        infusion_sessions=pd.DataFrame(
            [
                {
                    "session_id": session,
                    "patient_id": "C001-P00007",
                    "clinic_id": "C001",
                    "protocol": "iv_depression",
                    "drug": "ketamine",
                    "route": "IV",
                    "dose_mg_per_kg": 0.5,
                    "dose_mg": 35.0,
                    "infusion_number": 2,
                    "is_booster": 0,
                    "started_at": t("2026-01-06 15:00"),
                    "infusion_ended_at": t("2026-01-06 15:40"),
                    "discharged_at": t("2026-01-06 16:45"),
                    "status": "completed",
                    "updated_at": t("2026-01-06 17:00"),
                    "batch_id": "ehr-20260106T170500",
                }
            ]
        ),
        vital_signs=pd.DataFrame(
            [
                {
                    "session_id": session,
                    "patient_id": "C001-P00007",
                    "observed_at": t("2026-01-06 15:35"),
                    "sbp_mmhg": 162.0,
                    "dbp_mmhg": 97.0,
                    "hr_bpm": 88.0,
                    "spo2_pct": 97.0,
                    "rr_per_min": 14.0,
                    "temp_c": float("nan"),
                    "batch_id": "monitor-C001-20260106",
                }
            ]
        ),
        questionnaire_responses=pd.DataFrame(
            [
                {
                    "questionnaire_id": "0f4b7c1e-8d2a-4f6b-9c3e-1a2b3c4d5e6f",
                    "instrument": "phq9",
                    "status": "completed",
                    "session_id": session,
                    "patient_id": "C001-P00007",
                    "authored_at": t("2026-01-06 14:50"),
                    "answers_json": json.dumps(
                        {
                            "44250-9": 2,
                            "44255-8": 2,
                            "44259-0": 1,
                            "44254-1": 1,
                            "44251-7": 0,
                            "44258-2": 1,
                            "44252-5": 1,
                            "44253-3": 0,
                            "44260-8": 1,
                        }
                    ),
                    "total_score": 9.0,
                    "score_band": "mild",
                    "cssrs_risk": None,
                    "batch_id": "epro-C001-20260106",
                }
            ]
        ),
        clinician_ratings=pd.DataFrame(
            [
                {
                    "rating_key": f"{session}:cadss:40min",
                    "instrument": "cadss",
                    "session_id": session,
                    "patient_id": "C001-P00007",
                    "rated_at": t("2026-01-06 15:40"),
                    "items_json": json.dumps([1, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, None]),
                    "is_complete": False,
                    "total_score": float("nan"),
                    "batch_id": "redcap-C001-20260106",
                }
            ]
        ),
        adverse_events=pd.DataFrame(
            [
                {
                    "ae_id": f"{session}-AE1",
                    "session_id": session,
                    "patient_id": "C001-P00007",
                    "term": "nausea",
                    "term_label": "Nausea",
                    "code_system": "SNOMED",
                    "code": "422587007",
                    "onset_at": t("2026-01-06 15:25"),
                    "resolved_at": t("2026-01-06 16:10"),
                    "ctcae_grade": 2,
                    "ctcae_version": "5.0",
                    "serious": 0,
                    "seriousness_criteria": "",
                    "relatedness": "possibly_related",
                    "action_taken": "paused",
                    "outcome": "recovered",
                    "updated_at": t("2026-01-06 17:00"),
                    "batch_id": "ehr-20260106T170500",
                }
            ]
        ),
    )


PER_PATIENT = [t for t in STAGED_TABLES if t != "clinics"]


def staged_patients(count: int) -> StagedNetwork:
    """`staged_rows()` for `count` patients of the same clinic (keys suffixed), as one staged network."""
    import pandas as pd

    copies = []
    for n in range(count):
        one = staged_rows()
        for name in PER_PATIENT:
            frame = getattr(one, name).copy()
            for column in ("patient_id", "session_id", "mrn", "ae_id", "rating_key", "questionnaire_id"):
                if column in frame:
                    frame[column] = (
                        frame[column]
                        .astype(str)
                        .str.replace("P00007", f"P{n:05d}")
                        .str.replace("0000007", f"00000{n:02d}")
                    )
            setattr(one, name, frame)
        # An app response id with a '+': a conditional update must URL-encode it or create a duplicate.
        one.questionnaire_responses["questionnaire_id"] = f"resp+{n:03d}"
        copies.append(one)
    first = copies[0]
    return StagedNetwork(
        clinics=first.clinics,
        **{name: pd.concat([getattr(c, name) for c in copies], ignore_index=True) for name in PER_PATIENT},
    )


def write_lake(root, staged: StagedNetwork):
    """The staged tables as a lake (one Parquet file per table), ready for export."""
    from clinic_pipeline.lake import Lake

    lake = Lake(root)
    for name in STAGED_TABLES:
        lake.write_parquet(lake.path("staged", name, "part.parquet"), getattr(staged, name))
    return lake
