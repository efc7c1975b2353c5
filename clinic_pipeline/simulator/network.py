"""Clinics, patients and their treatment courses.

Everything is a pure function of (seed, clinic number, patient number) so that any window of days can be
generated on its own and a resumed run produces exactly what one long run would have produced.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clinic_pipeline.simulator.names import (
    CLINIC_TOWNS,
    FAMILY,
    GIVEN_FEMALE,
    GIVEN_MALE,
    US_STATE_BY_TZ,
)

# Stream tags keep the random streams of different purposes independent of each other.
TAG_CLINIC, TAG_ENROL, TAG_PATIENT, TAG_SESSION = 1, 2, 3, 4


def clamp(value: float, low: float, high: float) -> float:
    """Scalar clip (numpy's clip costs ~20 us on a scalar; this is on the hot path)."""
    return low if value < low else high if value > high else value


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent, reproducible random stream for one entity."""
    return np.random.default_rng([seed, *keys])


@dataclass(frozen=True, slots=True)
class Clinic:
    index: int
    clinic_id: str
    name: str
    timezone: str
    state: str
    monitor_coding: str  # "MDC" (IEEE 11073) or "LOINC"
    vitals_interval_min: int
    uses_madrs: bool
    new_patients_per_day: float


@dataclass(frozen=True, slots=True)
class PlannedSession:
    day: int  # days from the network start date
    infusion_number: int
    is_booster: bool


@dataclass(slots=True)
class Patient:
    clinic: Clinic
    number: int
    patient_id: str
    mrn: str
    redcap_record_id: str
    given_name: str
    family_name: str
    birth_date: dt.date
    sex: str
    age: int
    weight_kg: float
    height_cm: float
    indication: str
    icd10: str
    protocol: str
    hx_hypertension: bool
    hx_substance_use: bool
    hx_cardiovascular: bool
    enrolled_day: int
    response_class: str
    phq9_baseline: int
    item9_at_baseline: bool
    worsening_si: bool
    baseline_sbp: float
    baseline_dbp: float
    baseline_hr: float
    concomitant_medications: list[tuple[str, str]] = field(default_factory=list)
    sessions: list[PlannedSession] = field(default_factory=list)


def build_clinics(config: dict[str, Any], seed: int, count: int) -> list[Clinic]:
    net = config["network"]
    clinics = []
    for index in range(count):
        rng = rng_for(seed, TAG_CLINIC, index)
        tz = net["timezones"][int(rng.integers(len(net["timezones"])))]
        states = US_STATE_BY_TZ[tz]
        town = CLINIC_TOWNS[index % len(CLINIC_TOWNS)]
        clinics.append(
            Clinic(
                index=index,
                clinic_id=f"C{index + 1:03d}",
                name=f"{town} Ketamine Wellness",
                timezone=tz,
                state=states[int(rng.integers(len(states)))],
                monitor_coding="MDC" if rng.random() < net["monitor_coding_share_mdc"] else "LOINC",
                vitals_interval_min=int(rng.choice(net["vitals_interval_choices_min"])),
                uses_madrs=bool(rng.random() < net["madrs_clinic_share"]),
                new_patients_per_day=float(
                    rng.uniform(net["new_patients_per_day"]["min"], net["new_patients_per_day"]["max"])
                ),
            )
        )
    return clinics


def enrolment_days(config: dict[str, Any], seed: int, clinic: Clinic, last_day: int) -> list[int]:
    """The enrolment day of each patient of a clinic, in patient-number order, up to `last_day`."""
    days: list[int] = []
    for day in range(-config["network"]["warmup_days"], last_day + 1):
        arrivals = rng_for(seed, TAG_ENROL, clinic.index, day + 100_000).poisson(clinic.new_patients_per_day)
        days.extend([day] * int(arrivals))
    return days


def _choose(rng: np.random.Generator, shares: dict[str, float]) -> str:
    keys = list(shares)
    probs = np.array([shares[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=probs / probs.sum()))]


def build_patient(config: dict[str, Any], seed: int, clinic: Clinic, number: int, enrolled_day: int) -> Patient:
    rng = rng_for(seed, TAG_PATIENT, clinic.index, number)
    pcfg, vcfg, qcfg = config["patients"], config["vitals"], config["questionnaires"]["phq9"]
    indication = _choose(rng, {k: v["share"] for k, v in config["indications"].items()})
    ind = config["indications"][indication]
    protocol = _choose(rng, ind["protocols"])
    sex = "female" if rng.random() < pcfg["female_share"] else "male"
    age = int(clamp(rng.normal(pcfg["age"]["mean"], pcfg["age"]["sd"]), pcfg["age"]["min"], pcfg["age"]["max"]))
    hx_p = pcfg["hypertension_history"]
    p_htn = min(hx_p["max"], hx_p["base"] + hx_p["per_decade_over_40"] * max(0.0, (age - 40) / 10))
    hx_htn = bool(rng.random() < p_htn)
    start = dt.date.fromisoformat(config["network"]["start_date"])
    birth_date = start + dt.timedelta(days=enrolled_day) - dt.timedelta(days=int(age * 365.25 + rng.integers(365)))
    given = (GIVEN_FEMALE if sex == "female" else GIVEN_MALE)[int(rng.integers(40))]
    weight = float(clamp(rng.normal(pcfg["weight_kg"]["mean"], pcfg["weight_kg"]["sd"]), 45, 160))
    height_mean = pcfg["height_cm"]["female_mean" if sex == "female" else "male_mean"]
    baseline_phq = int(clamp(round(rng.normal(qcfg["baseline"]["mean"], qcfg["baseline"]["sd"])), 10, 27))
    sbp = rng.normal(vcfg["baseline_sbp_mmhg"]["mean"], vcfg["baseline_sbp_mmhg"]["sd"])
    sbp += 0.2 * (age - 48) + (vcfg["hypertension_history_sbp_offset_mmhg"] if hx_htn else 0)
    dbp = rng.normal(vcfg["baseline_dbp_mmhg"]["mean"], vcfg["baseline_dbp_mmhg"]["sd"])
    patient = Patient(
        clinic=clinic,
        number=number,
        patient_id=f"{clinic.clinic_id}-P{number:05d}",
        mrn=f"{clinic.index + 1:02d}{(number * 7919 + 104729) % 10_000_000:07d}",
        redcap_record_id=f"{clinic.clinic_id}-{number:04d}",
        given_name=given,
        family_name=FAMILY[int(rng.integers(len(FAMILY)))],
        birth_date=birth_date,
        sex=sex,
        age=age,
        weight_kg=round(weight, 1),
        height_cm=round(float(rng.normal(height_mean, pcfg["height_cm"]["sd"])), 1),
        indication=indication,
        icd10=ind["icd10"][int(rng.integers(len(ind["icd10"])))],
        protocol=protocol,
        hx_hypertension=hx_htn,
        hx_substance_use=bool(rng.random() < pcfg["substance_use_history"]),
        hx_cardiovascular=bool(rng.random() < pcfg["cardiovascular_history"]),
        enrolled_day=enrolled_day,
        response_class=_choose(rng, qcfg["classes"]),
        phq9_baseline=baseline_phq,
        item9_at_baseline=bool(rng.random() < qcfg["baseline_item9_positive_share"]),
        worsening_si=bool(rng.random() < qcfg["worsening_si_share"]),
        baseline_sbp=float(clamp(sbp, 95, 172)),
        baseline_dbp=float(clamp(min(dbp, sbp - 25), 55, 104)),
        baseline_hr=float(clamp(rng.normal(vcfg["baseline_hr_bpm"]["mean"], vcfg["baseline_hr_bpm"]["sd"]), 52, 100)),
    )
    patient.concomitant_medications = _concomitant_medications(rng, pcfg, patient)
    patient.sessions = _plan_course(config, rng, patient)
    return patient


def _concomitant_medications(rng: np.random.Generator, pcfg: dict[str, Any], patient: Patient) -> list[tuple[str, str]]:
    meds = []
    for drug_class, spec in pcfg["concomitant_medication_share"].items():
        if drug_class == "antihypertensive":
            share = spec["share_if_hypertension"] if patient.hx_hypertension else 0.0
        elif drug_class == "opioid" and patient.indication == "chronic_pain":
            share = spec["pain_share"]
        else:
            share = spec["share"]
        if rng.random() < share:
            meds.append((drug_class, spec["names"][int(rng.integers(len(spec["names"])))]))
    return meds


def _plan_course(config: dict[str, Any], rng: np.random.Generator, patient: Patient) -> list[PlannedSession]:
    """Induction series then boosters; non-responders mostly stop after induction."""
    proto = config["protocols"][patient.protocol]
    course = config["course"]
    closed = set(config["network"]["closed_weekdays"])
    start = dt.date.fromisoformat(config["network"]["start_date"])
    n_induction = proto["induction_infusions"]
    span = int(rng.integers(proto["induction_span_days"]["min"], proto["induction_span_days"]["max"] + 1))
    # Spread the induction infusions evenly over the span with a little jitter, never two on one day.
    offsets = np.round(np.linspace(0, span, n_induction)).astype(int)
    offsets[1:-1] += rng.integers(-1, 2, size=n_induction - 2)
    days: list[int] = []
    for off in offsets:
        day = patient.enrolled_day + int(off)
        if days and day <= days[-1]:
            day = days[-1] + 1
        while (start + dt.timedelta(days=day)).weekday() in closed:
            day += 1
        days.append(day)
    sessions = [PlannedSession(day=d, infusion_number=i + 1, is_booster=False) for i, d in enumerate(days)]
    if patient.response_class == "nonresponder" and rng.random() < course["nonresponder_stop_after_induction"]:
        return sessions
    last = days[-1]
    while True:
        gap = proto["booster_interval_days"]
        last += int(rng.integers(gap["min"], gap["max"] + 1))
        while (start + dt.timedelta(days=last)).weekday() in closed:
            last += 1
        if last - patient.enrolled_day > course["max_course_days"]:
            break
        sessions.append(PlannedSession(day=last, infusion_number=len(sessions) + 1, is_booster=True))
        if rng.random() < course["responder_stop_per_booster"]:
            break
    return sessions


def build_patients(config: dict[str, Any], seed: int, clinic: Clinic, last_day: int) -> list[Patient]:
    """Every patient of a clinic enrolled up to `last_day`, with the course each one follows."""
    return [
        build_patient(config, seed, clinic, number, day)
        for number, day in enumerate(enrolment_days(config, seed, clinic, last_day), start=1)
    ]
