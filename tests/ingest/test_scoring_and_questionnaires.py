"""Questionnaire scoring rules (DOMAIN.md): bands, item 9, C-SSRS triage, no total for an incomplete form."""

from __future__ import annotations

import pytest

from transforms import scoring
from transforms.epro_questionnaires import ResponseRejected, score_response
from transforms.redcap_ratings import RatingRejected, rating_row


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (14, "moderate"),
        (15, "moderately_severe"),
        (20, "severe"),
        (27, "severe"),
    ],
)
def test_phq9_bands(total, band):
    assert scoring.band(total, scoring.PHQ9_BANDS) == band


@pytest.mark.parametrize(
    ("answers", "risk"),
    [
        ({"cssrs-q1": False, "cssrs-q2": False, "cssrs-q6": False}, "none"),
        ({"cssrs-q1": True, "cssrs-q2": False, "cssrs-q6": False}, "low"),
        (
            {
                "cssrs-q1": True,
                "cssrs-q2": True,
                "cssrs-q3": True,
                "cssrs-q4": False,
                "cssrs-q5": False,
                "cssrs-q6": False,
            },
            "moderate",
        ),
        (
            {
                "cssrs-q1": True,
                "cssrs-q2": True,
                "cssrs-q3": False,
                "cssrs-q4": True,
                "cssrs-q5": False,
                "cssrs-q6": False,
            },
            "high",
        ),
        ({"cssrs-q1": False, "cssrs-q2": False, "cssrs-q6": True}, "high"),
        ({"cssrs-q1": True, "cssrs-q2": True, "cssrs-q6": False}, None),  # Q3-5 skipped after a yes to Q2: unknown
        ({"cssrs-q1": True, "cssrs-q6": False}, None),
    ],
)
def test_cssrs_triage(answers, risk):
    assert scoring.cssrs_risk(answers) == risk


def _phq9(scores: list[int | None]) -> dict:
    codes = {0: "LA6568-5", 1: "LA6569-3", 2: "LA6570-1", 3: "LA6571-9"}
    items = []
    for link, s in zip(scoring.PHQ9_ITEMS, scores, strict=True):
        item = {"linkId": link}
        if s is not None:
            item["answer"] = [{"valueCoding": {"system": "http://loinc.org", "code": codes[s]}}]
        items.append(item)
    return {
        "resourceType": "QuestionnaireResponse",
        "id": "q1",
        "questionnaire": "http://loinc.org/q/44249-1",
        "status": "completed",
        "authored": "2026-01-05T08:00:00-05:00",
        "item": items,
        "subject": {"identifier": {"system": "urn:ketamine-network:C001:mrn", "value": "0112345"}},
    }


def test_phq9_total_band_and_item9_flag():
    row = score_response(_phq9([3, 3, 2, 2, 2, 1, 1, 1, 1]))
    assert row["total_score"] == 16 and row["score_band"] == "moderately_severe"
    assert row["item9_score"] == 1 and row["suicidality_flag"] and not row["suicidality_unknown"]
    assert row["authored_at"].utcoffset().total_seconds() == 0


def test_a_partial_form_has_no_total_and_an_unanswered_item9_needs_review():
    row = score_response(_phq9([3, 3, 2, None, 2, 1, 1, 1, None]))
    assert not row["is_complete"] and row["total_score"] is None and row["score_band"] is None
    assert row["suicidality_unknown"] and not row["suicidality_flag"]


def test_an_answer_outside_the_answer_list_is_rejected():
    resource = _phq9([0] * 9)
    resource["item"][0]["answer"][0]["valueCoding"]["code"] = "LA9999-9"
    with pytest.raises(ResponseRejected) as exc:
        score_response(resource)
    assert exc.value.rule == "invalid_answer"


def test_redcap_local_time_becomes_utc_with_the_clinic_zone_and_incomplete_has_no_total():
    record = {
        "redcap_repeat_instrument": "cadss",
        "session_id": "C001-P00001-I001",
        "record_id": "C001-0001",
        "cadss_timepoint": "40min",
        "cadss_datetime": "2026-07-01 10:40",
        "cadss_complete": "2",
        **{f"cadss_{i}": "1" for i in range(1, 24)},
    }
    row = rating_row(record, "America/Los_Angeles")
    assert row["rated_at"].isoformat() == "2026-07-01T17:40:00+00:00"  # PDT, UTC-7
    assert row["total_score"] == 23 and row["dissociation_flag"]
    incomplete = rating_row({**record, "cadss_5": "", "cadss_complete": "0"}, "America/Los_Angeles")
    assert incomplete["total_score"] is None and not incomplete["is_complete"]
    with pytest.raises(RatingRejected):
        rating_row({**record, "cadss_3": "7"}, "America/Los_Angeles")
