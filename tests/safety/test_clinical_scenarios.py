"""Held-out clinical scenarios whose expected numbers were worked out by hand (in the comments), run through
the whole mart computation (`compute_marts`) with the packaged rules."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from clinic_pipeline.safety.marts import compute_marts
from clinic_pipeline.safety.rules import load_rules
from tests.safety.staged_frames import minutes, readings, session, steady, tables

RULES = load_rules()

# S1, IV depression, infusion 40 min, discharge 90 min:
#   -5: 150/95 (pre-dose), 10: 160/98, 20: 170/100, 30: 185/112, 35: 182/111, 40: 175/105, 50: 160/95,
#   60: 150/90, 75: 140/85, 90: 135/84.
S1 = [
    (-5, 150, 95, 80, 98),
    (10, 160, 98, 82, 97),
    (20, 170, 100, 84, 97),
    (30, 185, 112, 88, 96),
    (35, 182, 111, 90, 96),
    (40, 175, 105, 86, 97),
    (50, 160, 95, 84, 97),
    (60, 150, 90, 82, 97),
    (75, 140, 85, 80, 98),
    (90, 135, 84, 78, 98),
]
# S2, esketamine discharged at 100 min (REMS asks >= 120): all readings unremarkable.
S2_MINUTES = [-5, 10, 20, 30, 40, 50, 60, 75, 90, 100]
# S3, IV depression whose monitor missed readings: -5, 10, 25, 55, 70, 85, 90.
S3_MINUTES = [-5, 10, 25, 55, 70, 85, 90]
# S4 / S5: unremarkable vitals; S4 dissociated at 40 min (CADSS 12) and resolved at 85 min (CADSS 3);
# S5 dissociated (CADSS 9) with an incomplete discharge rating.
STEADY_MINUTES = [-5, 10, 20, 30, 40, 50, 60, 75, 90]
# S9: readings whose EHR session row is not staged (held in quarantine): 205/125 at minute 30.


@pytest.fixture(scope="module")
def marts() -> dict[str, pd.DataFrame]:
    given = tables(
        infusion_sessions=[
            session("S1"),
            session("S2", "esketamine", patient_id="P2", infusion_min=5, discharge_min=100),
            session("S3", patient_id="P3"),
            session("S4", patient_id="P4"),
            session("S5", patient_id="P5"),
        ],
        vital_signs=[
            *readings("S1", S1),
            *steady("S2", S2_MINUTES),
            *steady("S3", S3_MINUTES),
            *steady("S4", STEADY_MINUTES),
            *steady("S5", STEADY_MINUTES),
            *readings("S9", [(-5, 130, 80, 75, 98), (30, 205, 125, 90, 97), (60, 150, 90, 80, 97)]),
        ],
        clinician_ratings=[
            {
                "session_id": "S4",
                "instrument": "cadss",
                "timepoint": "40min",
                "rated_at": minutes(40),
                "minutes_from_start": 40.0,
                "total_score": 12.0,
                "is_complete": True,
            },
            {
                "session_id": "S4",
                "instrument": "cadss",
                "timepoint": "discharge",
                "rated_at": minutes(85),
                "minutes_from_start": 85.0,
                "total_score": 3.0,
                "is_complete": True,
            },
            {
                "session_id": "S5",
                "instrument": "cadss",
                "timepoint": "40min",
                "rated_at": minutes(40),
                "minutes_from_start": 40.0,
                "total_score": 9.0,
                "is_complete": True,
            },
            {
                "session_id": "S5",
                "instrument": "cadss",
                "timepoint": "discharge",
                "rated_at": minutes(85),
                "minutes_from_start": 85.0,
                "total_score": float("nan"),
                "is_complete": False,
            },
        ],
        patients=[{"patient_id": f"P{i}", "clinic_id": "C001", "enrolled_on": "2026-02-20"} for i in range(1, 6)],
        clinics=[{"clinic_id": "C001", "timezone": "America/New_York"}],
    )
    marts, _, _, _ = compute_marts(given, RULES, pd.DataFrame())
    return marts


def breach(marts: dict[str, pd.DataFrame], session_id: str, rule: str) -> pd.Series:
    found = marts["threshold_breaches"]
    rows = found.loc[(found["session_id"] == session_id) & (found["rule"] == rule)]
    assert len(rows) == 1, (session_id, rule, rows)
    return rows.iloc[0]


def safety(marts: dict[str, pd.DataFrame], session_id: str) -> pd.Series:
    return marts["session_safety"].set_index("session_id").loc[session_id]


def test_severe_bp_sustained_fires_on_the_second_reading(marts):
    # > 180/110 on two readings in a row: 185/112 at 30 and 182/111 at 35 -> the run starts at minute 30 and
    # the rule fires at minute 35; 175/105 at 40 ends the run (2 readings).
    row = breach(marts, "S1", "severe_bp_sustained")
    assert (row["first_minutes_from_start"], row["confirmed_minutes_from_start"]) == (30.0, 35.0)
    assert row["value"] == "185/112" and row["run_readings"] == 2 and row["breaching_readings"] == 2
    assert row["confirmed_observed_at"] == minutes(35)
    # Pre-dose 150/95 > 140/90; > 180/100 first at 30 (170/100 at 20 is not > 100); nothing > 200/120.
    assert breach(marts, "S1", "predose_bp")["value"] == "150/95"
    assert breach(marts, "S1", "session_bp_high")["first_minutes_from_start"] == 30.0
    rules = set(marts["threshold_breaches"].loc[marts["threshold_breaches"]["session_id"] == "S1", "rule"])
    assert rules == {"predose_bp", "session_bp_high", "severe_bp_sustained"}


def test_session_metrics_and_ctcae_grades_by_hand(marts):
    s1 = safety(marts, "S1")
    assert (s1["baseline_sbp_mmhg"], s1["peak_sbp_mmhg"], s1["peak_sbp_mmhg_minutes_from_start"]) == (150, 185, 30)
    assert (s1["peak_dbp_mmhg"], s1["delta_sbp_mmhg"], s1["delta_dbp_mmhg"]) == (112, 35, 17)
    # Back to baseline = SBP <= 160 and DBP <= 105: outside at 20, 30, 35, 40 -> back at the 50-min reading.
    assert s1["bp_back_to_baseline_min"] == 50.0 and bool(s1["bp_back_to_baseline"])
    # v5: any reading >= 160 or >= 100 -> G3. v6: >= 160/100 holds from 10 to 50 min (40 min, not > 1 h)
    # and >= 180/110 for 5 min -> no G3/G4; >= 140/90 on many readings -> G2 (recurrent).
    assert (s1["ctcae_v5_hypertension_grade"], s1["ctcae_v6_hypertension_grade"]) == (3, 2)
    assert s1["hypertension_ctcae_grade"] == 3 and s1["ctcae_version"] == "5.0"
    assert (s1["readings"], s1["predose_readings"], s1["postdose_readings"]) == (10, 1, 9)
    assert s1["lowest_spo2_pct"] == 96 and s1["lowest_spo2_pct_minutes_from_start"] == 30


def test_vitals_detected_hypertension_event_counts_as_severe(marts):
    events = marts["adverse_events"].set_index("ae_key")
    event = events.loc["S1:vitals:hypertension"]
    assert event["origin"] == "vitals_detected" and event["source_rule"] == "severe_bp_sustained"
    assert event["onset_minutes_from_start"] == 35.0 and event["severity"] == "v5.0 G3"
    assert event["seriousness"] == "not_assessed" and event["relatedness"] == "not_assessed"
    assert event["body_system"] == "Vascular disorders"
    assert bool(event["counts_in_incidence"]) and bool(event["severe_event"])  # no staff record to match
    assert bool(safety(marts, "S1")["severe_event"])


def test_esketamine_discharged_at_100_min_fails_the_rems_minimum(marts):
    s2 = safety(marts, "S2")
    assert s2["discharge_min"] == 100.0 and not s2["min_observation_met"] and not s2["monitoring_compliant"]
    assert s2["reading_near_40_min"] and s2["predose_bp_recorded"] and s2["cadence_overall_met"]
    assert pd.isna(safety(marts, "S1")["min_observation_met"])  # IV: no minimum configured


def test_missed_readings_fail_the_40_min_check_and_the_cadence(marts):
    s3 = safety(marts, "S3")
    # Nearest readings to 40 are 25 and 55 (15 min away > 10). Gaps from dosing: 10, 15, 30, 15, 15, 5.
    assert not s3["reading_near_40_min"] and not s3["cadence_during_infusion_met"] and not s3["cadence_overall_met"]
    assert (s3["max_gap_min"], s3["max_gap_during_infusion_min"]) == (30.0, 30.0)
    assert s3["reading_before_discharge"] and not s3["monitoring_compliant"]


def test_discharge_readiness_by_hand(marts):
    # S1: acceptable = SBP <= max(150 x 1.2, 140) = 180 and DBP <= max(95 x 1.2, 90) = 114; the last
    # unacceptable reading is 182/111 at 35 -> ready at the first reading >= 40 (end of dosing, 40-min check).
    s1 = safety(marts, "S1")
    assert s1["ready_for_discharge_min"] == 40.0 and s1["discharged_when_ready"] and s1["monitoring_compliant"]
    assert s1["minutes_discharged_after_ready"] == 50.0
    # S4: vitals ready at 40, but dissociated at 40 min (12 > 4) until the 85-min rating (3) -> ready at 85.
    s4 = safety(marts, "S4")
    assert (s4["cadss_peak"], s4["cadss_discharge"]) == (12.0, 3.0)
    assert s4["dissociation_at_peak"] and not s4["dissociation_at_discharge"]
    assert s4["ready_for_discharge_min"] == 85.0 and s4["discharged_when_ready"]
    # S5: dissociated at 40 min and the discharge rating is incomplete: unknown, never ready.
    s5 = safety(marts, "S5")
    assert s5["dissociation_discharge_unknown"] and not s5["dissociation_at_discharge"]
    assert math.isnan(s5["ready_for_discharge_min"]) and not s5["discharged_when_ready"]


def test_readings_of_a_session_held_in_quarantine_are_still_evaluated(marts):
    row = breach(marts, "S9", "severe_bp_single")  # 205/125 > 200/120, default rules
    assert row["rules_key"] == "default" and not row["session_staged"] and row["value"] == "205/125"
    s9 = safety(marts, "S9")
    assert s9["protocol"] == "unknown" and not s9["session_staged"]
    # It is listed, but not rated: no exposure to divide by.
    event = marts["adverse_events"].set_index("ae_key").loc["S9:vitals:hypertension"]
    assert not event["counts_in_incidence"]
    assert "S9" not in set(marts["spc_g_chart"].get("session_id", []))


def test_exposure_and_incidence_of_the_scenarios(marts):
    exposure = marts["ae_exposure"]
    assert exposure.loc[exposure["infusion_bucket"] == "all", "infusions"].sum() == 5
    cube = marts["ae_incidence"]
    per_infusion = cube.loc[cube["measure"] == "per_100_infusions"]
    # One counted event: S1's vitals-detected hypertension (S9 is not staged); its cell has 4 IV depression
    # first infusions of clinic C001 without con-meds.
    assert per_infusion[["term", "numerator", "denominator"]].values.tolist() == [["hypertension", 1, 4]]
    weekly = marts["spc_weekly"]
    p_point = weekly.loc[(weekly["chart"] == "p_sessions_with_ae") & (weekly["scope"] == "network")].iloc[0]
    assert (p_point["n"], p_point["count"], p_point["value"]) == (5, 1, 0.2)
