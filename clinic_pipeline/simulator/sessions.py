"""One infusion session: what the monitor measures, what staff record and what the patient answers.

The clinical story of a session is drawn once, from the session's own random stream, so monitor readings,
adverse events and questionnaires agree with each other (a recorded hypertension has a matching BP peak).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from clinic_pipeline.simulator.config import rate_for_infusion
from clinic_pipeline.simulator.network import TAG_SESSION, Patient, PlannedSession, clamp, rng_for

UTC = dt.UTC


@dataclass(slots=True)
class VitalReading:
    minutes_from_start: int
    taken_at: dt.datetime  # aware, clinic-local
    sbp: int
    dbp: int
    hr: int
    spo2: int
    rr: int
    temp_c: float | None


@dataclass(slots=True)
class AdverseEvent:
    ae_id: str
    term: str
    label: str
    code_system: str  # "SNOMED" or "LOCAL"
    code: str
    onset_min: int
    resolved_min: int | None
    grade: int
    serious: bool
    seriousness_criteria: list[str]
    relatedness: str
    action_taken: str
    outcome: str  # as first entered
    corrected_outcome: str | None  # set when a later correction changes it
    entry_delay_days: int  # 0 = entered the same day
    correction_delay_days: int | None


@dataclass(slots=True)
class Questionnaire:
    questionnaire_id: str
    instrument: str  # phq9, gad7, cssrs, cadss, madrs
    timepoint: str  # pre_session, 40min, discharge, baseline, post_induction
    authored_at: dt.datetime  # aware, clinic-local
    answers: list[Any]  # ints for scored items; for cssrs bools (None = not asked by skip logic)


@dataclass(slots=True)
class Session:
    session_id: str
    patient: Patient
    plan: PlannedSession
    protocol: str
    drug: str
    route: str
    dose_mg_per_kg: float
    dose_mg: float
    started_at: dt.datetime  # aware, clinic-local
    infusion_end_at: dt.datetime
    discharged_at: dt.datetime
    bp_category: str  # none, elevated, severe
    tachycardia: bool
    desaturation: bool
    readings: list[VitalReading] = field(default_factory=list)
    adverse_events: list[AdverseEvent] = field(default_factory=list)
    questionnaires: list[Questionnaire] = field(default_factory=list)
    cadss_40: int = 0


def deterministic_uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def build_session(config: dict[str, Any], seed: int, patient: Patient, plan: PlannedSession) -> Session:
    rng = rng_for(seed, TAG_SESSION, patient.clinic.index, patient.number, plan.infusion_number)
    proto = config["protocols"][patient.protocol]
    net = config["network"]
    tz = ZoneInfo(patient.clinic.timezone)
    day = dt.date.fromisoformat(net["start_date"]) + dt.timedelta(days=plan.day)
    slots = (net["last_start_hour_local"] - net["opening_hour_local"]) * 4
    start_min = net["opening_hour_local"] * 60 + 15 * int(rng.integers(slots + 1))
    started = dt.datetime.combine(day, dt.time(start_min // 60, start_min % 60), tzinfo=tz)
    infusion_min = proto["infusion_min"]
    monitoring_min = proto["min_monitoring_min"] + 5 * int(rng.integers(0, 7))
    if patient.protocol == "esketamine":
        dose_mg = float(proto["dose_mg"][0] if plan.infusion_number == 1 else rng.choice(proto["dose_mg"]))
        dose_per_kg = round(dose_mg / patient.weight_kg, 3)
    else:
        creep = 0.0
        if plan.is_booster and patient.response_class != "remitter":
            creep = proto["maintenance_dose_step_mg_per_kg"] * min(4, plan.infusion_number - 6)
        dose_per_kg = round(min(proto["dose_mg_per_kg"] + creep, proto["maintenance_dose_max_mg_per_kg"]), 3)
        dose_mg = round(dose_per_kg * patient.weight_kg, 1)
    session = Session(
        session_id=f"{patient.patient_id}-I{plan.infusion_number:03d}",
        patient=patient,
        plan=plan,
        protocol=patient.protocol,
        drug=proto["drug"],
        route=proto["route"],
        dose_mg_per_kg=dose_per_kg,
        dose_mg=dose_mg,
        started_at=started,
        infusion_end_at=started + dt.timedelta(minutes=infusion_min),
        discharged_at=started + dt.timedelta(minutes=monitoring_min),
        bp_category="none",
        tachycardia=False,
        desaturation=False,
    )
    _draw_vitals(config, rng, session, monitoring_min)
    session.cadss_40 = _draw_cadss_total(config, rng, plan.infusion_number)
    _draw_adverse_events(config, rng, session)
    _draw_questionnaires(config, rng, session)
    return session


# --- vitals -------------------------------------------------------------------------------------------


def reading_minutes(interval: int, infusion_min: int, monitoring_min: int) -> list[int]:
    """Baseline 5 min before dosing, every `interval` min for the first hour of dosing, then every 15."""
    minutes = [-5]
    t = interval
    while t <= monitoring_min:
        minutes.append(t)
        step = interval if t < max(60, min(infusion_min, 60)) else 15
        t += step
    if minutes[-1] != monitoring_min:
        minutes.append(monitoring_min)
    return minutes


def _bp_shape(minutes: np.ndarray, peak_min: float, plateau_end: float, half_life: float) -> np.ndarray:
    rise = np.clip(minutes / peak_min, 0.0, 1.0)
    decay_from = max(peak_min, plateau_end)
    decay = np.where(minutes > decay_from, 0.5 ** ((minutes - decay_from) / half_life), 1.0)
    return rise * decay


def _category_rates(config: dict[str, Any], patient: Patient, infusion_number: int) -> tuple[float, float]:
    vcfg = config["vitals"]
    ratio = vcfg["hypertension_history_risk_ratio"]
    hx_share = config["patients"]["hypertension_history"]["base"] + 0.1  # ~population share at mean age
    rr = (ratio if patient.hx_hypertension else 1.0) / (1 + (ratio - 1) * hx_share)
    scale = vcfg["esketamine_rate_scale"]["bp_elevated_165_100"] if patient.protocol == "esketamine" else 1.0
    p_elevated = rate_for_infusion(vcfg["bp_elevated_165_100"], infusion_number) * rr * scale
    p_severe = rate_for_infusion(vcfg["bp_severe_180_110"], infusion_number) * rr * scale
    return min(p_elevated, 0.95), min(p_severe, 0.5)


def _draw_vitals(config: dict[str, Any], rng: np.random.Generator, session: Session, monitoring_min: int) -> None:
    vcfg = config["vitals"]
    patient, plan = session.patient, session.plan
    proto = config["protocols"][patient.protocol]
    minutes = np.array(
        reading_minutes(patient.clinic.vitals_interval_min, proto["infusion_min"], monitoring_min),
        dtype=float,
    )
    n = len(minutes)
    peak_min = float(rng.integers(proto["bp_peak_min"]["min"], proto["bp_peak_min"]["max"] + 1))
    shape = _bp_shape(minutes, peak_min, proto["infusion_min"], proto["bp_half_life_min"])
    age_effect = vcfg["peak_delta_per_year_over_40_mmhg"] * max(0, patient.age - 40)
    hx_effect = vcfg["hypertension_history_peak_offset_mmhg"] if patient.hx_hypertension else 0.0
    scale = vcfg["esketamine_peak_scale"] if patient.protocol == "esketamine" else 1.0
    d_sbp = max(0.0, rng.normal(vcfg["peak_delta_sbp_mmhg"]["mean"], vcfg["peak_delta_sbp_mmhg"]["sd"]))
    d_sbp = (d_sbp + age_effect + hx_effect) * scale
    d_dbp = max(0.0, rng.normal(vcfg["peak_delta_dbp_mmhg"]["mean"], vcfg["peak_delta_dbp_mmhg"]["sd"])) * scale
    base_sbp = patient.baseline_sbp + rng.normal(0, 5)
    base_dbp = patient.baseline_dbp + rng.normal(0, 3)
    noise = vcfg["reading_noise"]

    p_elevated, p_severe = _category_rates(config, patient, plan.infusion_number)
    u = rng.random()
    category = "severe" if u < p_severe else "elevated" if u < p_elevated else "none"
    peak_i = int(np.argmax(shape))
    if category == "none":
        base_sbp, base_dbp = min(base_sbp, 156.0), min(base_dbp, 94.0)
        d_sbp, d_dbp = min(d_sbp, 160 - base_sbp), min(d_dbp, 97 - base_dbp)
        sbp = base_sbp + d_sbp * shape + rng.normal(0, noise["sbp"], n)
        dbp = base_dbp + d_dbp * shape + rng.normal(0, noise["dbp"], n)
        sbp, dbp = np.minimum(sbp, 164), np.minimum(dbp, 99)
    else:
        dbp_driven = rng.random() < 0.3
        if category == "elevated":
            target_sbp = rng.uniform(150, 164) if dbp_driven else rng.uniform(165, 179.4)
            target_dbp = rng.uniform(100, 109.4) if dbp_driven else rng.uniform(85, 99)
        else:
            target_sbp = rng.uniform(181, 206) if not dbp_driven else rng.uniform(165, 179)
            target_dbp = rng.uniform(111, 122) if dbp_driven else rng.uniform(95, 112)
        base_sbp, base_dbp = min(base_sbp, target_sbp - 10), min(base_dbp, target_dbp - 8)
        rel = shape / shape[peak_i]
        sbp = base_sbp + (target_sbp - base_sbp) * rel + rng.normal(0, noise["sbp"], n) * (rel < 1)
        dbp = base_dbp + (target_dbp - base_dbp) * rel + rng.normal(0, noise["dbp"], n) * (rel < 1)
        if category == "elevated":
            sbp, dbp = np.minimum(sbp, 179), np.minimum(dbp, 109)
            sbp[peak_i], dbp[peak_i] = target_sbp, target_dbp
        else:  # severe: the peak and the next reading both over 180/110
            nxt = min(peak_i + 1, n - 1)
            if dbp_driven:
                dbp[nxt] = max(dbp[nxt], rng.uniform(110.5, target_dbp))
            else:
                sbp[nxt] = max(sbp[nxt], rng.uniform(180.5, target_sbp))
    dbp = np.minimum(dbp, sbp - 20)
    hr = patient.baseline_hr + rng.normal(vcfg["delta_hr_bpm"]["mean"], vcfg["delta_hr_bpm"]["sd"]) * shape
    hr = hr + rng.normal(0, noise["hr"], n)
    tachy_rate = rate_for_infusion(vcfg["tachycardia_over_110"], plan.infusion_number)
    if patient.protocol == "esketamine":
        tachy_rate *= vcfg["esketamine_rate_scale"]["tachycardia_over_110"]
    session.tachycardia = bool(rng.random() < tachy_rate)
    if session.tachycardia:
        i = max(1, peak_i - 1)
        hr[i : i + 2] = rng.uniform(112, 128, size=len(hr[i : i + 2]))
    else:
        hr = np.minimum(hr, 108)
    spo2 = rng.integers(vcfg["baseline_spo2_pct"]["min"], vcfg["baseline_spo2_pct"]["max"] + 1, n).astype(float)
    spo2 -= (rng.random(n) < 0.15).astype(float)
    session.desaturation = bool(rng.random() < rate_for_infusion(vcfg["spo2_below_90"], plan.infusion_number))
    if session.desaturation:
        i = int(rng.integers(1, max(2, peak_i + 1)))
        spo2[i] = rng.integers(84, 90)
        if i + 1 < n:
            spo2[i + 1] = rng.integers(90, 94)
    rr = rng.normal(vcfg["baseline_rr_per_min"]["mean"], vcfg["baseline_rr_per_min"]["sd"]) + rng.normal(
        0, noise["rr"], n
    )
    temp0 = rng.normal(vcfg["baseline_temp_c"]["mean"], vcfg["baseline_temp_c"]["sd"])
    session.bp_category = category
    session.readings = [
        VitalReading(
            minutes_from_start=int(m),
            taken_at=session.started_at + dt.timedelta(minutes=int(m)),
            sbp=round(float(s)),
            dbp=round(float(d)),
            hr=round(float(h)),
            spo2=int(min(100, o)),
            rr=int(clamp(round(float(r)), 8, 30)),
            temp_c=round(float(temp0 + (0.1 if i else 0.0)), 1) if i in (0, n - 1) else None,
        )
        for i, (m, s, d, h, o, r) in enumerate(zip(minutes, sbp, dbp, hr, spo2, rr, strict=True))
    ]


# --- dissociation ----------------------------------------------------------------------------------------


def _cadss_multiplier(config: dict[str, Any], infusion_number: int) -> float:
    mult = config["cadss"]["infusion_multiplier"]
    return mult.get(str(infusion_number), mult["later"])


def cadss_exceedance(config: dict[str, Any], infusion_number: int) -> float:
    """P(CADSS at 40 min > threshold) under the configured zero-inflated log-normal."""
    c = config["cadss"]
    median = c["lognormal_median_first"] * _cadss_multiplier(config, infusion_number)
    z = math.log((c["dissociation_threshold"] + 0.5) / median) / c["lognormal_sigma"]
    return (1 - c["zero_share"]) * 0.5 * math.erfc(z / math.sqrt(2))


def _draw_cadss_total(config: dict[str, Any], rng: np.random.Generator, infusion_number: int) -> int:
    c = config["cadss"]
    if rng.random() < c["zero_share"]:
        return 0
    median = c["lognormal_median_first"] * _cadss_multiplier(config, infusion_number)
    return int(min(92, round(rng.lognormal(math.log(median), c["lognormal_sigma"]))))


def spread_total(rng: np.random.Generator, total: int, items: int, max_per_item: int) -> list[int]:
    """Split a scale total over its items (each 0..max) at random; the items always sum to the total."""
    remaining = int(min(total, items * max_per_item))
    values = np.zeros(items, dtype=np.int64)
    weights = rng.dirichlet(np.ones(items))
    while remaining:
        open_weights = weights * (values < max_per_item)
        values += rng.multinomial(remaining, open_weights / open_weights.sum())
        overflow = np.maximum(values - max_per_item, 0)
        values -= overflow
        remaining = int(overflow.sum())
    return values.tolist()


# --- adverse events ---------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, shares: dict[str, float]) -> str:
    keys = list(shares)
    p = np.array([shares[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _new_event(
    config: dict[str, Any],
    rng: np.random.Generator,
    session: Session,
    term: str,
    spec: dict[str, Any],
    **kw: Any,
) -> AdverseEvent:
    aecfg = config["adverse_events"]
    monitoring = int((session.discharged_at - session.started_at).total_seconds() // 60)
    window = spec.get("onset_min", [5, 40])
    onset = int(kw.pop("onset_min", rng.integers(window[0], window[1] + 1)))
    onset = min(onset, monitoring - 5)
    grades = spec.get("grades", [1.0, 0.0, 0.0])
    grade = int(kw.pop("grade", 1 + int(_pick(rng, {str(i): g for i, g in enumerate(grades) if g > 0}))))
    serious = bool(kw.pop("serious", rng.random() < spec.get("serious_share", 0.0)))
    criteria = list(kw.pop("criteria", spec.get("serious_criteria", []) if serious else []))
    outcome = _pick(rng, aecfg["outcome_at_discharge"])
    if serious and "hospitalization" in criteria:
        outcome = "recovering"
    lo, hi = aecfg["late_correction_days"]
    event = AdverseEvent(
        ae_id=f"{session.session_id}-AE{len(session.adverse_events) + 1}",
        term=term,
        label=spec["label"],
        code_system="SNOMED" if "snomed" in spec else "LOCAL",
        code=spec.get("snomed", spec.get("local_code", term)),
        onset_min=onset,
        resolved_min=min(monitoring, onset + int(rng.integers(10, 90))) if outcome == "recovered" else None,
        grade=grade,
        serious=serious,
        seriousness_criteria=criteria,
        relatedness=kw.pop("relatedness", _pick(rng, aecfg["relatedness"])),
        action_taken=kw.pop("action_taken", "none"),
        outcome=outcome,
        corrected_outcome="recovered" if outcome == "recovering" else None,
        entry_delay_days=int(rng.random() < aecfg["late_entry_share"]),
        correction_delay_days=int(rng.integers(lo, hi + 1)) if outcome == "recovering" else None,
    )
    assert not kw, f"unknown adverse event fields {sorted(kw)}"
    session.adverse_events.append(event)
    return event


TERM_ACTIONS = {
    "nausea": {"none": 0.6, "medication_given": 0.4},
    "vomiting": {"none": 0.3, "medication_given": 0.6, "paused": 0.1},
    "anxiety": {"none": 0.75, "medication_given": 0.15, "paused": 0.1},
    "headache": {"none": 0.8, "medication_given": 0.2},
    "emergence_reaction": {"paused": 0.4, "medication_given": 0.35, "stopped": 0.25},
    "seizure": {"stopped": 0.3, "ed_transfer": 0.7},
    "mania_psychosis": {"stopped": 0.2, "ed_transfer": 0.8},
}


def _draw_adverse_events(config: dict[str, Any], rng: np.random.Generator, session: Session) -> None:
    aecfg, vcfg = config["adverse_events"], config["vitals"]
    n = session.plan.infusion_number
    multipliers = aecfg["protocol_multipliers"].get(session.protocol, {})
    derived = aecfg["derived_terms"]
    for term, spec in aecfg["terms"].items():
        if rng.random() < rate_for_infusion(spec, n) * multipliers.get(term, 1.0):
            action = _pick(rng, TERM_ACTIONS.get(term, {"none": 1.0}))
            _new_event(config, rng, session, term, spec, action_taken=action)
    threshold = config["cadss"]["dissociation_threshold"]
    if session.cadss_40 > threshold:
        p_note = min(1.0, rate_for_infusion(derived["dissociation"], n) / cadss_exceedance(config, n))
        if rng.random() < p_note:
            grades = {str(i): g for i, g in enumerate(derived["dissociation"]["grades"])}
            _new_event(
                config,
                rng,
                session,
                "dissociation",
                derived["dissociation"],
                onset_min=int(rng.integers(5, 25)),
                grade=1 + int(_pick(rng, grades)),
            )
    if session.bp_category != "none":
        peak = max(session.readings, key=lambda r: (r.sbp, r.dbp))
        p_med = rate_for_infusion(vcfg["antihypertensive_given_rate"], n) / rate_for_infusion(
            vcfg["bp_elevated_165_100"], n
        )
        action = "medication_given" if rng.random() < p_med else "none"
        serious, criteria, grade = False, [], 3
        if session.bp_category == "severe":
            action = _pick(rng, {"paused": 0.45, "stopped": 0.25, "medication_given": 0.3})
            if rng.random() < aecfg["severe_hypertension_ed_transfer"]:
                action, serious, criteria, grade = "ed_transfer", True, ["hospitalization"], 4
        _new_event(
            config,
            rng,
            session,
            "hypertension",
            derived["hypertension"],
            onset_min=peak.minutes_from_start,
            grade=grade,
            serious=serious,
            criteria=criteria,
            relatedness="related",
            action_taken=action,
        )
    if session.tachycardia:
        onset = next(r.minutes_from_start for r in session.readings if r.hr > 110)
        _new_event(
            config,
            rng,
            session,
            "tachycardia",
            derived["tachycardia"],
            onset_min=onset,
            grade=int(rng.integers(1, 3)),
            relatedness="possibly_related",
        )
    if session.desaturation:
        onset = next(r.minutes_from_start for r in session.readings if r.spo2 < 90)
        _new_event(
            config,
            rng,
            session,
            "hypoxia",
            derived["hypoxia"],
            onset_min=onset,
            grade=3,
            action_taken=_pick(rng, {"paused": 0.6, "stopped": 0.4}),
        )


# --- questionnaires ----------------------------------------------------------------------------------------


def _phq9_total(config: dict[str, Any], rng: np.random.Generator, patient: Patient, completed: int) -> int:
    qcfg = config["questionnaires"]["phq9"]
    base = patient.phq9_baseline
    final_rng = np.random.default_rng([patient.number, patient.clinic.index, 77])  # stable per patient
    if patient.response_class == "remitter":
        final = final_rng.uniform(1, 4.4)
    elif patient.response_class == "responder":
        final = max(5.0, base * final_rng.uniform(0.3, 0.5))
    else:
        final = base * final_rng.uniform(0.55, 1.0)
    score = final + (base - final) * math.exp(-completed / 1.8) + rng.normal(0, qcfg["noise_sd"]) * (completed > 0)
    return int(clamp(round(score), 0, 27))


def _item9(rng: np.random.Generator, patient: Patient, completed: int, total: int) -> int:
    if patient.worsening_si and completed >= 3:
        return int(min(total, rng.integers(1, 4)))
    if not patient.item9_at_baseline:
        return 0
    keep = 0.75 if patient.response_class == "nonresponder" else math.exp(-completed / 3)
    return int(min(total, rng.integers(1, 3))) if rng.random() < keep else 0


def _draw_questionnaires(config: dict[str, Any], rng: np.random.Generator, session: Session) -> None:
    qcfg = config["questionnaires"]
    patient, n = session.patient, session.plan.infusion_number
    completed = n - 1
    if rng.random() < qcfg["epro_completion"]:
        lo, hi = qcfg["authored_before_session_min"]
        authored = session.started_at - dt.timedelta(minutes=int(rng.integers(lo, hi + 1)))
        phq_total = _phq9_total(config, rng, patient, completed)
        item9 = _item9(rng, patient, completed, phq_total)
        phq_items = [*spread_total(rng, phq_total - item9, 8, 3), item9]
        gad_total = int(
            clamp(
                round(phq_total * qcfg["gad7"]["baseline_ratio_to_phq9"] + rng.normal(0, qcfg["gad7"]["noise_sd"])),
                0,
                21,
            )
        )
        cs = qcfg["cssrs"]
        probs = cs["ideation_given_item9"] if item9 > 0 else cs["ideation_without_item9"]
        q = {k: bool(rng.random() < p) for k, p in probs.items()}
        q["q1"] = q["q1"] or q["q2"]
        cssrs: list[bool | None] = [q["q1"], q["q2"]]
        # Screener skip logic: questions 3-5 are asked only after a "yes" to question 2.
        cssrs += [q["q3"], q["q4"], q["q5"]] if q["q2"] else [None, None, None]
        cssrs.append(bool(rng.random() < cs["behaviour_past_3_months"]))
        for instrument, answers in (
            ("phq9", phq_items),
            ("gad7", spread_total(rng, gad_total, 7, 3)),
            ("cssrs", cssrs),
        ):
            session.questionnaires.append(
                Questionnaire(deterministic_uuid(rng), instrument, "pre_session", authored, answers)
            )
        if patient.worsening_si and completed == 3 and item9 > 0:  # staff record it once, when it emerges
            spec = config["adverse_events"]["derived_terms"]["suicidal_ideation"]
            _new_event(
                config,
                rng,
                session,
                "suicidal_ideation",
                spec,
                onset_min=0,
                grade=2,
                relatedness="unlikely_related",
            )
    # CADSS is clinician-administered at ~40 min and before discharge (REDCap).
    at40 = session.started_at + dt.timedelta(minutes=40)
    discharge_score = (
        int(rng.integers(0, 3))
        if rng.random() < config["cadss"]["discharge_max_share_le_2"]
        else int(rng.integers(3, 9))
    )
    discharge_score = min(discharge_score, session.cadss_40)
    for timepoint, when, total in (
        ("40min", at40, session.cadss_40),
        ("discharge", session.discharged_at - dt.timedelta(minutes=5), discharge_score),
    ):
        session.questionnaires.append(
            Questionnaire(deterministic_uuid(rng), "cadss", timepoint, when, spread_total(rng, total, 23, 4))
        )
    after_induction = config["protocols"][patient.protocol]["induction_infusions"] + 1
    if patient.clinic.uses_madrs and n in (1, after_induction):
        base = clamp(rng.normal(32, 6), 20, 50)
        factor = {"remitter": 0.2, "responder": 0.45, "nonresponder": 0.85}[patient.response_class]
        total = round(base if n == 1 else base * factor)
        session.questionnaires.append(
            Questionnaire(
                deterministic_uuid(rng),
                "madrs",
                "baseline" if n == 1 else "post_induction",
                session.started_at - dt.timedelta(minutes=15),
                spread_total(rng, total, 10, 6),
            )
        )
