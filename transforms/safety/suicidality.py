"""Suicidality flags from patient-reported questionnaires: PHQ-9 item 9 and the C-SSRS screener.

A flag is `positive` when the protocol's rule is met (PHQ-9 item 9 >= `phq9_item9_at_least`; a "yes" to any
of `cssrs_high_risk_questions`), or `unknown` when the answer that decides it is missing: an unanswered
item 9, or a screener question left blank outside its skip logic (Q3-Q5 are asked only after a "yes" to Q2).
The ingest's own `suicidality_unknown` (a partial screener) also counts as unknown. An unknown answer is never
read as "no risk": it is listed for the same review as a positive one.

`treatment_emergent` compares a positive answer with the patient's baseline (the questionnaire of their
first infusion): new or worse than baseline (PHQ-9 item 9 higher; C-SSRS high risk not present at baseline).
Suicidal ideation is also a symptom of the depression being treated (DOMAIN.md: ~40 % of TRD patients at
baseline [assumption in the simulator], ~6 % report more ideation during treatment), so only a
treatment-emergent flag counts as an adverse event in incidence; every flag stays in the listing.
NA when the baseline is not in the data (a course that started before the staged history).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from transforms.safety.rule_set import DEFAULT_PROTOCOL, SafetyRules

POSITIVE, UNKNOWN = "positive", "unknown"
PHQ9_RULE, CSSRS_RULE = "phq9_item9", "cssrs_high_risk"
SKIPPED_UNLESS_Q2 = ("q3", "q4", "q5")
FLAG_COLUMNS = [
    "questionnaire_id",
    "instrument",
    "rule",
    "flag_kind",
    "value",
    "session_id",
    "patient_id",
    "clinic_id",
    "authored_at",
    "baseline_value",
    "treatment_emergent",
]


def _cssrs_answers(answers_json: pd.Series) -> pd.DataFrame:
    """q1..q6 answers (True / False / None) of C-SSRS screeners."""
    parsed = [json.loads(text) if isinstance(text, str) and text else {} for text in answers_json]
    return pd.DataFrame(
        {f"q{i}": [a.get(f"cssrs-q{i}") for a in parsed] for i in range(1, 7)}, index=answers_json.index, dtype=object
    )


def _rules_keys(responses: pd.DataFrame, session_keys: pd.Series, rules: SafetyRules) -> pd.Series:
    keys = responses["session_id"].map(session_keys.astype(object)).fillna(DEFAULT_PROTOCOL)
    return pd.Series(pd.Categorical(keys, categories=list(rules.all_protocols())), index=responses.index)


def suicidality_flags(
    responses: pd.DataFrame, session_keys: pd.Series, session_infusion: pd.Series, rules: SafetyRules
) -> pd.DataFrame:
    """One row per questionnaire that is positive or unknown.

    `session_keys`: session_id -> rules key; `session_infusion`: session_id -> infusion number.
    """
    protocols = rules.all_protocols()
    found = []
    phq9 = responses.loc[responses["instrument"] == "phq9"]
    if not phq9.empty:
        keys = _rules_keys(phq9, session_keys, rules)
        at_least = rules.per_key(keys, {k: p.suicidality.phq9_item9_at_least for k, p in protocols.items()})
        item9 = pd.to_numeric(phq9["item9_score"], errors="coerce")
        positive = item9.to_numpy() >= at_least.astype(float)
        unknown = ~positive & (item9.isna().to_numpy() | phq9["suicidality_unknown"].fillna(False).to_numpy(bool))
        value = item9.map(lambda v: "" if pd.isna(v) else f"{v:g}")
        baseline = _baseline(phq9, item9, session_infusion)
        emergent = np.where(baseline.isna(), pd.NA, item9.to_numpy() > baseline.to_numpy())
        found.append(_rows(phq9, PHQ9_RULE, positive, unknown, value, baseline.map(_text), emergent))
    cssrs = responses.loc[responses["instrument"] == "cssrs"]
    if not cssrs.empty:
        keys = _rules_keys(cssrs, session_keys, rules)
        answers = _cssrs_answers(cssrs["answers_json"])
        questions = rules.per_key(keys, {k: p.suicidality.cssrs_high_risk_questions for k, p in protocols.items()})
        hits, unknown = [], []
        q2_yes = answers["q2"].to_numpy()
        for row, asked in enumerate(questions):
            yes = [q for q in asked if answers.iat[row, int(q[1]) - 1] is True]
            blank = [
                q
                for q in asked
                if answers.iat[row, int(q[1]) - 1] is None and not (q in SKIPPED_UNLESS_Q2 and q2_yes[row] is False)
            ]
            hits.append(",".join(yes))
            unknown.append(bool(blank) and not yes)
        positive = np.array([bool(h) for h in hits])
        unknown_arr = ~positive & (np.array(unknown) | cssrs["suicidality_unknown"].fillna(False).to_numpy(bool))
        known = ~unknown_arr | positive
        baseline = _baseline(cssrs, pd.Series(np.where(known, positive, np.nan), index=cssrs.index), session_infusion)
        emergent = np.where(baseline.isna(), pd.NA, baseline.to_numpy() == 0)
        baseline_text = baseline.map(lambda v: "" if pd.isna(v) else ("high_risk" if v else "not_high_risk"))
        found.append(
            _rows(cssrs, CSSRS_RULE, positive, unknown_arr, pd.Series(hits, index=cssrs.index), baseline_text, emergent)
        )
    if not found:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FLAG_COLUMNS})
    flags = pd.concat(found, ignore_index=True)
    return flags.sort_values(["clinic_id", "patient_id", "authored_at", "questionnaire_id"], kind="stable").reset_index(
        drop=True
    )


def _text(value: float) -> str:
    return "" if pd.isna(value) else f"{value:g}"


def _baseline(frame: pd.DataFrame, score: pd.Series, session_infusion: pd.Series) -> pd.Series:
    """Each response's patient's baseline score: their response at infusion 1 (NaN when not staged).

    The baseline response itself is compared with nothing (NaN): a flag at baseline is not treatment-emergent.
    """
    infusion = frame["session_id"].map(session_infusion.astype(float))
    at_first = frame.assign(score=score).loc[infusion == 1].sort_values("authored_at", kind="stable")
    baseline = at_first.drop_duplicates("patient_id").set_index("patient_id")["score"]
    result = frame["patient_id"].map(baseline.astype(float))
    return result.where(infusion != 1).astype(float)


def _rows(
    frame: pd.DataFrame,
    rule: str,
    positive: np.ndarray,
    unknown: np.ndarray,
    value: pd.Series,
    baseline: pd.Series,
    emergent: np.ndarray,
) -> pd.DataFrame:
    keep = positive | unknown
    picked = frame.loc[keep]
    emergent = np.where(positive, emergent, pd.NA)
    return pd.DataFrame(
        {
            "questionnaire_id": picked["questionnaire_id"].to_numpy(),
            "instrument": picked["instrument"].to_numpy(),
            "rule": rule,
            "flag_kind": np.where(positive[keep], POSITIVE, UNKNOWN),
            "value": value.loc[keep].to_numpy(),
            "session_id": picked["session_id"].to_numpy(),
            "patient_id": picked["patient_id"].to_numpy(),
            "clinic_id": picked["clinic_id"].to_numpy(),
            "authored_at": picked["authored_at"].to_numpy(),
            "baseline_value": baseline.loc[keep].to_numpy(),
            "treatment_emergent": pd.array(emergent[keep], dtype="boolean"),
        }
    )
