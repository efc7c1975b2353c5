"""Questionnaire scoring (DOMAIN.md): totals, bands and safety flags. An incomplete form gets no total."""

from __future__ import annotations

from collections.abc import Sequence

PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
PHQ9_ITEM9 = "44260-8"
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
CSSRS_ITEMS = ["cssrs-q1", "cssrs-q2", "cssrs-q3", "cssrs-q4", "cssrs-q5", "cssrs-q6"]
FREQUENCY_SCORES = {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}
YES_NO = {"LA33-6": True, "LA32-8": False}
PHQ9_BANDS = [(4, "minimal"), (9, "mild"), (14, "moderate"), (19, "moderately_severe"), (27, "severe")]
GAD7_BANDS = [(4, "minimal"), (9, "mild"), (14, "moderate"), (21, "severe")]
CADSS_ITEMS, CADSS_MAX = 23, 4
MADRS_ITEMS, MADRS_MAX = 10, 6
CADSS_DISSOCIATION_OVER = 4


def band(total: int | None, bands: list[tuple[int, str]]) -> str | None:
    if total is None:
        return None
    return next(name for upper, name in bands if total <= upper)


def complete_total(scores: Sequence[int | None]) -> int | None:
    """Sum of item scores, or None when any item is unanswered: never a silent wrong score."""
    if any(s is None for s in scores):
        return None
    return int(sum(scores))  # type: ignore[arg-type]


def cssrs_risk(answers: dict[str, bool | None]) -> str | None:
    """C-SSRS screener triage: Q4/Q5/Q6 yes -> high; Q3 -> moderate; Q1/Q2 -> low; all no -> none.

    Skip logic: Q3-Q5 are asked only after a yes to Q2, so they may be absent. Q1, Q2 and Q6 must be answered;
    without them the risk is unknown (None), which the safety layer must treat as needing review.
    """
    if any(answers.get(q) is None for q in ("cssrs-q1", "cssrs-q2", "cssrs-q6")):
        return None
    if answers.get("cssrs-q2") and any(answers.get(q) is None for q in ("cssrs-q3", "cssrs-q4", "cssrs-q5")):
        return None
    if answers.get("cssrs-q4") or answers.get("cssrs-q5") or answers.get("cssrs-q6"):
        return "high"
    if answers.get("cssrs-q3"):
        return "moderate"
    if answers.get("cssrs-q1") or answers.get("cssrs-q2"):
        return "low"
    return "none"
