"""Suicidality flags, the incidence cube and pseudonyms on hand-written rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from clinic_pipeline.safety.rules import load_rules
from tests.safety.staged_frames import minutes
from transforms.safety.incidence import exposure, incidence_cube
from transforms.safety.pseudonyms import TOKEN_ALPHABET, assign_tokens, random_token
from transforms.safety.suicidality import suicidality_flags

RULES = load_rules()


def phq9(qid: str, patient: str, session: str, item9: float | None) -> dict:
    return {
        "questionnaire_id": qid,
        "instrument": "phq9",
        "session_id": session,
        "patient_id": patient,
        "clinic_id": "C001",
        "authored_at": minutes(-60),
        "answers_json": "{}",
        "total_score": 12.0,
        "item9_score": item9,
        "suicidality_unknown": item9 is None,
        "is_complete": item9 is not None,
    }


def cssrs(qid: str, patient: str, session: str, **answers) -> dict:
    full = {f"cssrs-q{i}": answers.get(f"q{i}") for i in range(1, 7)}
    return {
        "questionnaire_id": qid,
        "instrument": "cssrs",
        "session_id": session,
        "patient_id": patient,
        "clinic_id": "C001",
        "authored_at": minutes(-60),
        "answers_json": json.dumps(full),
        "total_score": None,
        "item9_score": None,
        "suicidality_unknown": False,
        "is_complete": True,
    }


@pytest.fixture(scope="module")
def flags() -> pd.DataFrame:
    responses = pd.DataFrame(
        [
            phq9("A1", "PA", "PA-I001", 1.0),  # baseline item 9 = 1: positive, the baseline itself
            phq9("A2", "PA", "PA-I002", 2.0),  # 2 > baseline 1: positive, treatment-emergent
            phq9("A3", "PA", "PA-I003", 1.0),  # 1 = baseline: positive, not treatment-emergent
            phq9("B1", "PB", "PB-I004", None),  # item 9 unanswered: unknown
            phq9("B2", "PB", "PB-I005", 0.0),  # no flag
            cssrs("C1", "PC", "PC-I001", q1=True, q2=True, q3=False, q4=True, q5=False, q6=False),  # high risk q4
            cssrs("C2", "PC", "PC-I002", q1=False, q2=False, q6=False),  # q3-q5 skipped after "no" to q2: no flag
            cssrs("C3", "PC", "PC-I003", q1=True, q2=True, q3=True, q4=None, q5=False, q6=False),  # q4 blank: unknown
            cssrs("C4", "PC", "PC-I004", q1=False, q2=False, q6=None),  # behaviour question blank: unknown
            cssrs("C5", "PC", "PC-I005", q1=True, q2=True, q3=False, q4=False, q5=True, q6=True),  # q5 + q6
        ]
    )
    sessions = ["PA-I001", "PA-I002", "PA-I003", "PB-I004", "PB-I005", *[f"PC-I00{i}" for i in range(1, 6)]]
    infusion = pd.Series([int(s[-1]) for s in sessions], index=sessions)
    keys = pd.Series(
        pd.Categorical(["iv_depression"] * len(sessions), categories=list(RULES.all_protocols())), index=sessions
    )
    return suicidality_flags(responses, keys, infusion, RULES).set_index("questionnaire_id")


def test_positive_and_unknown_answers(flags):
    assert set(flags.index) == {"A1", "A2", "A3", "B1", "C1", "C3", "C4", "C5"}
    assert flags.loc[["A1", "A2", "A3", "C1", "C5"], "flag_kind"].eq("positive").all()
    assert flags.loc[["B1", "C3", "C4"], "flag_kind"].eq("unknown").all()
    assert flags.loc[["A1", "A2", "C1", "C5"], "value"].tolist() == ["1", "2", "q4", "q5,q6"]
    assert flags.loc[["A1", "C1"], "rule"].tolist() == ["phq9_item9", "cssrs_high_risk"]


def test_treatment_emergent_compares_with_the_first_infusions_answer(flags):
    emergent = flags["treatment_emergent"]
    assert pd.isna(emergent["A1"]) and emergent["A2"] and not emergent["A3"]  # A1 is the baseline
    assert flags.loc["A2", "baseline_value"] == "1"
    assert pd.isna(emergent["C1"]) and not emergent["C5"]  # C1 = baseline high risk -> C5 is not new
    assert pd.isna(emergent["B1"])  # unknown answers are not rated


def incidence_events() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patient P1: nausea at infusions 1 and 2 (G1, G2); P2: nausea at infusion 1 (G1) and a vitals-detected
    hypertension that staff also recorded (not counted twice); P3: no event. All IV depression, clinic C001."""
    sessions = pd.DataFrame(
        {
            "session_id": ["P1-1", "P1-2", "P2-1", "P3-1"],
            "patient_id": ["P1", "P1", "P2", "P3"],
            "clinic_id": "C001",
            "protocol": "iv_depression",
            "conmed_stratum": ["none", "none", "opioid", "none"],
            "infusion_bucket": ["1", "2", "1", "1"],
        }
    )
    base = {
        "clinic_id": "C001",
        "protocol": "iv_depression",
        "body_system": "Gastrointestinal disorders",
        "seriousness": "non_serious",
        "relatedness": "related",
        "origin": "staff_recorded",
    }
    events = pd.DataFrame(
        [
            {
                **base,
                "patient_id": "P1",
                "session_id": "P1-1",
                "conmed_stratum": "none",
                "infusion_bucket": "1",
                "term": "nausea",
                "severity": "v5.0 G1",
                "counts_in_incidence": True,
            },
            {
                **base,
                "patient_id": "P1",
                "session_id": "P1-2",
                "conmed_stratum": "none",
                "infusion_bucket": "2",
                "term": "nausea",
                "severity": "v5.0 G2",
                "counts_in_incidence": True,
            },
            {
                **base,
                "patient_id": "P2",
                "session_id": "P2-1",
                "conmed_stratum": "opioid",
                "infusion_bucket": "1",
                "term": "nausea",
                "severity": "v5.0 G1",
                "counts_in_incidence": True,
            },
            {
                **base,
                "patient_id": "P2",
                "session_id": "P2-1",
                "conmed_stratum": "opioid",
                "infusion_bucket": "1",
                "term": "hypertension",
                "body_system": "Vascular disorders",
                "severity": "v5.0 G3",
                "origin": "vitals_detected",
                "seriousness": "not_assessed",
                "relatedness": "not_assessed",
                "counts_in_incidence": False,
            },
        ]
    )
    return events, sessions


def cell(cube: pd.DataFrame, **where) -> tuple[int, int]:
    rows = cube
    for column, value in where.items():
        rows = rows.loc[rows[column] == value]
    assert len(rows) == 1, (where, rows)
    return int(rows["numerator"].iloc[0]), int(rows["denominator"].iloc[0])


def test_incidence_cube_by_hand():
    events, sessions = incidence_events()
    cells = exposure(sessions)
    cube = incidence_cube(events, cells)
    per_inf = cube.loc[cube["measure"] == "per_100_infusions"]
    # Per 100 infusions: P1's two nausea events sit in different buckets of the (C001, none) cells:
    # bucket 1 has 2 infusions (P1-1, P3-1), bucket 2 one (P1-2). P2's hypertension is not counted.
    assert cell(per_inf, conmed_stratum="none", infusion_bucket="1", term="nausea") == (1, 2)
    assert cell(per_inf, conmed_stratum="none", infusion_bucket="2", term="nausea") == (1, 1)
    assert cell(per_inf, conmed_stratum="opioid", infusion_bucket="1", term="nausea") == (1, 1)
    assert per_inf["numerator"].sum() == 3 and "hypertension" not in set(per_inf["term"])
    per_pt = cube.loc[cube["measure"] == "per_patient"]
    # Per patient, all buckets, any severity: P1 once (not twice) among the 2 patients without con-meds.
    any_ = {"severity": "any", "seriousness": "any", "relatedness": "any"}
    assert cell(per_pt, conmed_stratum="none", infusion_bucket="all", term="nausea", **any_) == (1, 2)
    assert cell(per_pt, conmed_stratum="none", infusion_bucket="1", term="nausea", **any_) == (1, 2)
    assert cell(per_pt, conmed_stratum="none", infusion_bucket="2", term="nausea", **any_) == (1, 1)
    # Severity filter G2: only P1's second infusion.
    g2 = {"severity": "v5.0 G2", "seriousness": "any", "relatedness": "any"}
    assert cell(per_pt, conmed_stratum="none", infusion_bucket="all", term="nausea", **g2) == (1, 2)
    # Any event at all (body system and term "all"): 2 patients of 3 over the two strata.
    total = per_pt.loc[
        (per_pt["term"] == "all")
        & (per_pt["body_system"] == "all")
        & (per_pt["infusion_bucket"] == "all")
        & (per_pt["severity"] == "any")
        & (per_pt["seriousness"] == "any")
        & (per_pt["relatedness"] == "any")
    ]
    assert total["numerator"].sum() == 2 and total["denominator"].sum() == 3
    assert cells.loc[cells["infusion_bucket"] == "all", "patients"].sum() == 3
    assert cells.loc[cells["infusion_bucket"] != "all", "infusions"].sum() == 4


def test_tokens_are_random_stable_and_never_shared():
    lookup, added = assign_tokens(pd.DataFrame(), ["P2", "P1", "P1", None])
    assert added == 2 and lookup["patient_id"].tolist() == ["P1", "P2"]
    assert all(
        t.startswith("P-") and len(t) == 10 and set(t[2:]) <= set(TOKEN_ALPHABET) for t in lookup["patient_token"]
    )
    again, added_again = assign_tokens(lookup, ["P1", "P2", "P3"])
    assert added_again == 1
    assert again.set_index("patient_id").loc[["P1", "P2"], "patient_token"].tolist() == lookup["patient_token"].tolist()
    # A generator that repeats itself must not give two patients one token.
    issued = iter([again["patient_token"].iloc[0], again["patient_token"].iloc[0], "P-NEWTOKEN"])
    third, _ = assign_tokens(again, ["P4"], new_token=lambda: next(issued))
    assert third.set_index("patient_id").loc["P4", "patient_token"] == "P-NEWTOKEN"
    assert random_token() != random_token()
