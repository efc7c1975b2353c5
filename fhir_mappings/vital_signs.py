"""Monitor readings -> Observations conforming to the FHIR R4 vital-signs profiles.

One monitor reading (a row of `vital_signs`) gives a blood-pressure panel (systolic and diastolic components),
heart rate, SpO2, respiratory rate and, when measured, body temperature: category `vital-signs`, LOINC codes,
UCUM units, the specific profile in `meta.profile`. A measure the monitor did not send gives no Observation; a
panel missing one pressure carries that component with a dataAbsentReason (profile rule vs-3).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from fhir_mappings import identity as ids
from fhir_mappings.mapped import Mapped, RowCheck, concat_rejections, missing, split_rows, unresolved, utc_text
from fhir_mappings.terminology import DATA_ABSENT_REASON, LOINC, OBSERVATION_CATEGORY, UCUM, vital_signs

VITAL_SIGNS_CATEGORY = [
    {
        "coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}],
        "text": "Vital Signs",
    }
]
SINGLE_VALUE_MEASURES = ("heart_rate", "oxygen_saturation", "respiratory_rate", "body_temperature")
_ABSENT = {"coding": [{"system": DATA_ABSENT_REASON, "code": "unknown", "display": "Unknown"}]}


@functools.cache
def _code(measure: str) -> dict:
    sign = vital_signs()[measure]
    return {"coding": [{"system": LOINC, "code": sign.loinc, "display": sign.display}], "text": sign.display}


def _quantity(measure: str, value: float) -> dict:
    sign = vital_signs()[measure]
    return {"value": value, "unit": sign.unit, "system": UCUM, "code": sign.ucum}


def reading_keys(readings: pd.DataFrame) -> pd.Series:
    """Business key of one reading: its session and the second it was taken (unique after the ingest's dedupe)."""
    stamp = readings["observed_at"].dt.tz_convert("UTC").dt.strftime("%Y%m%dT%H%M%SZ")
    return readings["session_id"] + "-" + stamp


def _values(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].to_numpy(dtype="float64", na_value=np.nan).round(2)


def vital_sign_observation(
    frame: pd.DataFrame,
    measure: str,
    column: str,
    *,
    identifier_system: str,
    effective: list[str],
    batches: list[str],
    source_times: list[str],
) -> Mapped:
    """One single-value vital-sign Observation per row (rows without a value must be dropped by the caller)."""
    sign = vital_signs()[measure]
    code, category, profile = _code(measure), VITAL_SIGNS_CATEGORY, [sign.profile]
    out = Mapped("Observation")
    for key, session, patient, value, when in zip(
        frame["observation_key"].tolist(),
        frame["session_id"].tolist(),
        frame["patient_id"].tolist(),
        _values(frame, column).tolist(),
        effective,
        strict=True,
    ):
        value_key = f"{key}-{measure}" if identifier_system == ids.VITAL_SIGN else key
        out.resources.append(
            {
                "resourceType": "Observation",
                "id": ids.observation_id(identifier_system, value_key),
                "meta": {"profile": profile},
                "identifier": [ids.identifier(identifier_system, value_key)],
                "status": "final",
                "category": category,
                "code": code,
                "subject": ids.patient_ref(patient),
                "encounter": ids.encounter_ref(session),
                "effectiveDateTime": when,
                "valueQuantity": {"value": value, "unit": sign.unit, "system": UCUM, "code": sign.ucum},
            }
        )
    out.shapes += [("Observation", measure)] * len(frame)
    out.patient_ids += frame["patient_id"].tolist()
    out.batch_ids += batches
    out.source_times += source_times
    return out


def build_vital_signs(readings: pd.DataFrame, session_keys: set[str]) -> Mapped:
    """All vital-sign Observations of staged monitor readings; readings of sessions not exported are rejected."""
    keys = readings["session_id"].astype("string") + "@" + readings["observed_at"].astype("string")
    values = readings[[vital_signs()[m].staged_column for m in ("systolic", "diastolic", *SINGLE_VALUE_MEASURES)]]
    numeric = values.to_numpy(dtype="float64", na_value=np.nan)
    good, rejected = split_rows(
        readings,
        [
            missing(readings, "observed_at"),
            unresolved(readings, "session_id", session_keys, "infusion session"),
            RowCheck(
                "decimal", "a measured value is infinite", pd.Series(np.isinf(numeric).any(axis=1), readings.index)
            ),
            RowCheck(
                "required",
                "the reading carries no measured value",
                pd.Series(np.isnan(numeric).all(axis=1), readings.index),
            ),
        ],
        resource_type="Observation",
        source_table="vital_signs",
        key=keys,
        batch=readings.get("batch_id"),
    )
    good = good.assign(observation_key=reading_keys(good))
    out = _blood_pressure_panels(good)
    for measure in SINGLE_VALUE_MEASURES:
        column = vital_signs()[measure].staged_column
        measured = good[good[column].notna()]
        out.extend(
            vital_sign_observation(
                measured,
                measure,
                column,
                identifier_system=ids.VITAL_SIGN,
                effective=utc_text(measured["observed_at"]),
                batches=measured["batch_id"].tolist(),
                source_times=utc_text(measured["observed_at"]),
            )
        )
    out.rejections = concat_rejections([rejected, out.rejections])
    return out


def _component(measure: str, value: float) -> dict:
    if math.isnan(value):
        return {"code": _code(measure), "dataAbsentReason": _ABSENT}
    return {"code": _code(measure), "valueQuantity": _quantity(measure, value)}


def _blood_pressure_panels(readings: pd.DataFrame) -> Mapped:
    panels = readings[readings["sbp_mmhg"].notna() | readings["dbp_mmhg"].notna()]
    code, profile = _code("blood_pressure"), [vital_signs()["blood_pressure"].profile]
    out = Mapped("Observation")
    for key, session, patient, sbp, dbp, when in zip(
        panels["observation_key"].tolist(),
        panels["session_id"].tolist(),
        panels["patient_id"].tolist(),
        _values(panels, "sbp_mmhg").tolist(),
        _values(panels, "dbp_mmhg").tolist(),
        utc_text(panels["observed_at"]),
        strict=True,
    ):
        value_key = f"{key}-blood_pressure"
        out.resources.append(
            {
                "resourceType": "Observation",
                "id": ids.observation_id(ids.VITAL_SIGN, value_key),
                "meta": {"profile": profile},
                "identifier": [ids.identifier(ids.VITAL_SIGN, value_key)],
                "status": "final",
                "category": VITAL_SIGNS_CATEGORY,
                "code": code,
                "subject": ids.patient_ref(patient),
                "encounter": ids.encounter_ref(session),
                "effectiveDateTime": when,
                "component": [_component("systolic", sbp), _component("diastolic", dbp)],
            }
        )
        out.shapes.append(("Observation", "blood_pressure", np.isnan(sbp), np.isnan(dbp)))
    out.patient_ids += panels["patient_id"].tolist()
    out.batch_ids += panels["batch_id"].tolist()
    out.source_times += utc_text(panels["observed_at"])
    return out
