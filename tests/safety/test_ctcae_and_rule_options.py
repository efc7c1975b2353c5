"""CTCAE hypertension grades under v5 and v6 (persistence), and rule options, on hand-written readings."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import yaml

from clinic_pipeline.safety.marts import compute_marts
from clinic_pipeline.safety.rules import DEFAULT_RULES, rules_from_mapping
from tests.safety.staged_frames import readings, session, tables

RAW = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))


def build(rules_raw: dict, sessions: list[dict], rows: list[dict]) -> dict[str, pd.DataFrame]:
    marts, _, _, _ = compute_marts(
        tables(infusion_sessions=sessions, vital_signs=rows), rules_from_mapping(rules_raw), pd.DataFrame()
    )
    return marts


def plateau(session_id: str, level: tuple[float, float], start: float, end: float) -> list[dict]:
    """Baseline 130/80 at -5; readings every 5 min to 30, then every 15: `level` from `start` to `end`
    (inclusive), 135/82 otherwise; discharge reading at 120."""
    minutes = [-5, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 100, 105, 110, 120]
    rows = []
    for m in minutes:
        sbp, dbp = level if start <= m <= end else ((130, 80) if m < 0 else (135, 82))
        rows.append((m, sbp, dbp, 80, 97))
    return readings(session_id, rows)


@pytest.fixture(scope="module")
def grades() -> pd.DataFrame:
    sessions = [session(s, discharge_min=120) for s in ("G3", "G3EDGE", "G4", "SINGLE")]
    rows = [
        *plateau("G3", (165, 102), 30, 95),  # >= 160/100 from 30 to 95: 65 min > 1 h
        *plateau("G3EDGE", (165, 102), 30, 90),  # 60 min exactly: not "over 1 h" -> recurrent only: G2
        *plateau("G4", (185, 112), 30, 100),  # >= 180/110 for 70 min
        *plateau("SINGLE", (166, 95), 40, 40),  # one reading >= 160: v5 G3, v6 below G2
    ]
    marts = build(RAW, sessions, rows)
    return marts["session_safety"].set_index("session_id")


def test_v6_needs_persistence_over_an_hour(grades):
    assert grades.loc["G3", ["ctcae_v5_hypertension_grade", "ctcae_v6_hypertension_grade"]].tolist() == [3, 3]
    assert grades.loc["G3EDGE", ["ctcae_v5_hypertension_grade", "ctcae_v6_hypertension_grade"]].tolist() == [3, 2]
    assert grades.loc["G4", ["ctcae_v5_hypertension_grade", "ctcae_v6_hypertension_grade"]].tolist() == [3, 4]
    assert grades.loc["SINGLE", ["ctcae_v5_hypertension_grade", "ctcae_v6_hypertension_grade"]].tolist() == [3, 0]


def test_a_protocol_on_v6_grades_its_detected_events_with_v6():
    raw = copy.deepcopy(RAW)
    raw["protocols"]["iv_depression"]["ctcae_version"] = "6.0"
    marts = build(raw, [session("G4", discharge_min=120)], plateau("G4", (185, 112), 30, 100))
    event = marts["adverse_events"].set_index("ae_key").loc["G4:vitals:hypertension"]
    assert (event["ctcae_grade"], event["ctcae_version"], event["severity"]) == (4, "6.0", "v6.0 G4")
    assert marts["session_safety"].iloc[0]["hypertension_ctcae_grade"] == 4


def test_max_minutes_apart_splits_a_run():
    # 185/112 at 30 and at 50 (the 40-min reading held in quarantine): two in a row, but 20 min apart.
    rows = readings(
        "S",
        [
            (-5, 130, 80, 75, 98),
            (10, 140, 85, 75, 98),
            (30, 185, 112, 80, 97),
            (50, 186, 113, 80, 97),
            (65, 140, 85, 78, 98),
            (90, 132, 82, 76, 98),
        ],
    )
    plain = build(RAW, [session("S")], rows)["threshold_breaches"]
    assert "severe_bp_sustained" in set(plain["rule"])  # the simulator's rule: any two readings in a row
    raw = copy.deepcopy(RAW)
    raw["defaults"]["reading_rules"]["severe_bp_sustained"]["max_minutes_apart"] = 10
    strict = build(raw, [session("S")], rows)["threshold_breaches"]
    assert "severe_bp_sustained" not in set(strict["rule"])
    assert "session_bp_high" in set(strict["rule"])


def test_a_disabled_rule_is_not_evaluated_for_that_protocol_only():
    raw = copy.deepcopy(RAW)
    raw["protocols"]["esketamine"]["reading_rules"] = {"predose_bp": {"enabled": False}}
    rows = [
        *readings("E", [(-5, 150, 95, 75, 98), (40, 130, 80, 75, 98), (120, 128, 80, 75, 98)]),
        *readings("I", [(-5, 150, 95, 75, 98), (40, 130, 80, 75, 98), (120, 128, 80, 75, 98)]),
    ]
    sessions = [session("E", "esketamine", infusion_min=5, discharge_min=120), session("I", discharge_min=120)]
    found = build(raw, sessions, rows)["threshold_breaches"]
    assert found.loc[found["rule"] == "predose_bp", "session_id"].tolist() == ["I"]
