"""Pure building blocks of the simulator: courses, reading cadence, scale scoring."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from clinic_pipeline.simulator.config import load_network_config
from clinic_pipeline.simulator.network import build_clinics, build_patients
from clinic_pipeline.simulator.sessions import build_session, cadss_exceedance, reading_minutes, spread_total

CONFIG = load_network_config()


@pytest.fixture(scope="module")
def patients():
    clinics = build_clinics(CONFIG, seed=1, count=4)
    return [p for c in clinics for p in build_patients(CONFIG, seed=1, clinic=c, last_day=60)]


@pytest.mark.parametrize(
    ("interval", "infusion", "monitoring", "expected"),
    [
        (10, 40, 90, [-5, 10, 20, 30, 40, 50, 60, 75, 90]),
        (5, 40, 95, [-5, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 75, 90, 95]),
        (10, 5, 120, [-5, 10, 20, 30, 40, 50, 60, 75, 90, 105, 120]),
    ],
)
def test_vitals_cadence_follows_domain_rules(interval, infusion, monitoring, expected):
    assert reading_minutes(interval, infusion, monitoring) == expected


@pytest.mark.parametrize(("total", "items", "cap"), [(0, 9, 3), (27, 9, 3), (13, 9, 3), (92, 23, 4), (40, 23, 4)])
def test_scale_items_always_sum_to_the_drawn_total(total, items, cap):
    rng = np.random.default_rng(total)
    values = spread_total(rng, total, items, cap)
    assert sum(values) == total and len(values) == items and all(0 <= v <= cap for v in values)


def test_induction_series_follows_the_protocol(patients):
    start = dt.date.fromisoformat(CONFIG["network"]["start_date"])
    for patient in patients:
        proto = CONFIG["protocols"][patient.protocol]
        induction = [s for s in patient.sessions if not s.is_booster]
        assert len(induction) == proto["induction_infusions"]
        assert [s.infusion_number for s in patient.sessions] == list(range(1, len(patient.sessions) + 1))
        days = [s.day for s in patient.sessions]
        assert days == sorted(set(days)), "one session a day at most, in order"
        assert all((start + dt.timedelta(days=d)).weekday() != 6 for d in days), "clinics are closed on Sunday"
        assert induction[-1].day - induction[0].day <= proto["induction_span_days"]["max"] + 3
        boosters = [s.day for s in patient.sessions if s.is_booster]
        gaps = np.diff([induction[-1].day, *boosters])
        assert all(
            proto["booster_interval_days"]["min"] <= g <= proto["booster_interval_days"]["max"] + 1 for g in gaps
        )


def test_esketamine_sessions_are_monitored_at_least_two_hours(patients):
    esketamine = [p for p in patients if p.protocol == "esketamine"]
    assert esketamine
    for patient in esketamine[:10]:
        session = build_session(CONFIG, 1, patient, patient.sessions[0])
        assert (session.discharged_at - session.started_at) >= dt.timedelta(hours=2)
        assert session.dose_mg in (56.0, 84.0) and session.route == "NASAL"


def test_a_recorded_hypertension_has_a_matching_blood_pressure_peak(patients):
    seen = 0
    for patient in patients:
        for plan in patient.sessions[:3]:
            session = build_session(CONFIG, 1, patient, plan)
            recorded = any(e.term == "hypertension" for e in session.adverse_events)
            peak = any(r.sbp >= 165 or r.dbp >= 100 for r in session.readings[1:])
            assert recorded == peak == (session.bp_category != "none")
            seen += recorded
    assert seen > 0


def test_cadss_exceedance_is_high_enough_to_carry_the_dissociation_rate():
    derived = CONFIG["adverse_events"]["derived_terms"]["dissociation"]
    assert cadss_exceedance(CONFIG, 1) > derived["first"]
    assert cadss_exceedance(CONFIG, 5) > derived["later"]
