"""Monitor readings -> Observations conforming to the FHIR R4 vital-signs profiles.

One monitor reading (a row of `vital_signs`) gives a blood-pressure panel (systolic and diastolic components),
heart rate, SpO2, respiratory rate and, when measured, body temperature: category `vital-signs`, LOINC codes,
UCUM units, the specific profile in `meta.profile`. A measure the monitor did not send gives no Observation; a
panel missing one pressure carries that component with a dataAbsentReason (profile rule vs-3).
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any

import numpy as np
import orjson
import pandas as pd

from fhir_mappings import identity as ids
from fhir_mappings.mapped import Mapped, RowCheck, missing, split_rows, unresolved, utc_text
from fhir_mappings.template import Template
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
    stamps = [t.replace("-", "").replace(":", "") for t in utc_text(readings["observed_at"])]
    return readings["session_id"] + "-" + pd.Series(stamps, index=readings.index, dtype="string")


def _values(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].to_numpy(dtype="float64", na_value=np.nan).round(2)


def observation(
    measure: str, system: str, rid: str, key: str, subject: str, encounter: str, when: str, value: Any
) -> dict[str, Any]:
    """One single-value vital-sign Observation (references as "Type/id" strings)."""
    sign = vital_signs()[measure]
    return {
        "resourceType": "Observation",
        "id": rid,
        "meta": {"profile": [sign.profile]},
        "identifier": [ids.identifier(system, key)],
        "status": "final",
        "category": VITAL_SIGNS_CATEGORY,
        "code": _code(measure),
        "subject": {"reference": subject},
        "encounter": {"reference": encounter},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": sign.unit, "system": UCUM, "code": sign.ucum},
    }


def blood_pressure_panel(
    absent: tuple[bool, bool], rid: str, key: str, subject: str, encounter: str, when: str, *values: Any
) -> dict[str, Any]:
    """The BP panel; `absent` says which of systolic/diastolic has no value (then a dataAbsentReason)."""
    given = iter(values)
    components = [
        {"code": _code(measure), "dataAbsentReason": _ABSENT}
        if missing
        else {"code": _code(measure), "valueQuantity": _quantity(measure, next(given))}
        for measure, missing in zip(("systolic", "diastolic"), absent, strict=True)
    ]
    return {
        "resourceType": "Observation",
        "id": rid,
        "meta": {"profile": [vital_signs()["blood_pressure"].profile]},
        "identifier": [ids.identifier(ids.VITAL_SIGN, key)],
        "status": "final",
        "category": VITAL_SIGNS_CATEGORY,
        "code": _code("blood_pressure"),
        "subject": {"reference": subject},
        "encounter": {"reference": encounter},
        "effectiveDateTime": when,
        "component": components,
    }


@functools.cache
def _reference(kind: str, key: str) -> bytes:
    """A serialized reference string, cached: thousands of readings point to one patient and one session."""
    rid = ids.patient_id(key) if kind == "Patient" else ids.encounter_id(key)
    return orjson.dumps(f"{kind}/{rid}")


def _template_lines(
    out: Mapped, frame: pd.DataFrame, shape: Hashable, build: Any, measure: str, values: list[np.ndarray]
) -> None:
    """Lines of one shape from its template (every row of `frame` has every value of `values`)."""
    if frame.empty:
        return
    holes = 5 + len(values)
    template = Template(build, holes)
    keys = [f"{k}-{measure}" for k in frame["observation_key"].tolist()]
    rids = [ids.observation_id(ids.VITAL_SIGN, k) for k in keys]
    patients = frame["patient_id"].tolist()
    sessions = frame["session_id"].tolist()
    times = utc_text(frame["observed_at"])
    numbers = [v.tolist() for v in values]
    first = (rids[0], keys[0], f"Patient/{ids.patient_id(patients[0])}", f"Encounter/{ids.encounter_id(sessions[0])}")
    out.examples[shape] = template.check(*first, times[0], *(n[0] for n in numbers))
    dumps, fill = orjson.dumps, template.fill
    columns = zip(rids, keys, patients, sessions, times, *numbers, strict=True)
    for rid, key, patient, session, when, *measured in columns:
        row = [dumps(rid), dumps(key), _reference("Patient", patient), _reference("Encounter", session), dumps(when)]
        row += map(dumps, measured)
        out.lines.append(fill(row))
    out.ids += rids
    out.shapes += [shape] * len(frame)
    out.patient_ids += patients
    out.batch_ids += frame["batch_id"].tolist()
    out.source_times += times


def build_vital_signs(readings: pd.DataFrame, session_keys: set[str]) -> Mapped:
    """All vital-sign Observations of staged monitor readings; readings of sessions not exported are rejected."""
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
        key=lambda rows: rows["session_id"].astype("string") + "@" + rows["observed_at"].astype("string"),
        batch=readings.get("batch_id"),
    )
    good = good.assign(observation_key=reading_keys(good))
    out = Mapped("Observation", rejections=rejected)
    sbp, dbp = good["sbp_mmhg"].notna(), good["dbp_mmhg"].notna()
    for absent in ((False, False), (True, False), (False, True)):
        rows = good[(sbp != absent[0]) & (dbp != absent[1])]
        given = [_values(rows, c) for c, missing in (("sbp_mmhg", absent[0]), ("dbp_mmhg", absent[1])) if not missing]
        build = functools.partial(blood_pressure_panel, absent)
        _template_lines(out, rows, ("Observation", "blood_pressure", *absent), build, "blood_pressure", given)
    for measure in SINGLE_VALUE_MEASURES:
        column = vital_signs()[measure].staged_column
        rows = good[good[column].notna()]
        build = functools.partial(observation, measure, ids.VITAL_SIGN)
        _template_lines(out, rows, ("Observation", measure), build, measure, [_values(rows, column)])
    return out
