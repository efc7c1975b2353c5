"""Efficacy context and person-level drill-down: PHQ-9 trajectories and outcomes, suicidality flags (counts
only), the serious-event listing (pseudonymous tokens, relative days), and the data-quality banner.

The listing is the one view that is person-level by design (DOMAIN.md: drill-downs are pseudonymous): each
row is one serious event, so the rows of a narrow filter can be counted. Every aggregate is suppressed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from clinic_pipeline.dashboard.suppression import (
    ALL,
    SUPPRESSED_LABEL,
    Relation,
    is_small,
    suppress_cells,
    suppress_in_turn,
)
from clinic_pipeline.dashboard.tables import PublishedTable, primary_only, published_counts, rollup

PATIENT_KEYS = ["clinic_id", "protocol"]
PHQ9_MEASURES = ["patients_with_baseline", "patients_assessed", "responders", "remitters", "item9_worsened"]
EMERGENCE_PARTS = ("treatment_emergent", "not_worse", "no_baseline")
SUICIDALITY_CATEGORIES = {
    "any_positive": "Any positive screen",
    "phq9_item9": "PHQ-9 item 9 >= 1",
    "cssrs_high_risk": "C-SSRS high risk (Q4, Q5 or recent behaviour)",
    "treatment_emergent": "Worse than before infusion 1 (counted as an adverse event)",
    "not_worse": "Present before infusion 1, not worse",
    "no_baseline": "No answer before infusion 1 in the data",
    "unanswered": "Suicidality question unanswered",
}


def phq9_outcomes_view(phq9_outcomes: pd.DataFrame) -> PublishedTable:
    """Response and remission per clinic and protocol ("all" rows added; complementary over both)."""
    keys = [*PATIENT_KEYS, "readout"]
    cells = rollup(phq9_outcomes, keys, PATIENT_KEYS, PHQ9_MEASURES)
    cells, hidden = suppress_in_turn(
        cells,
        keys,
        [
            ("patients_with_baseline", None),
            ("patients_assessed", "patients_with_baseline"),
            ("responders", "patients_assessed"),
            ("remitters", "patients_assessed"),
            ("item9_worsened", "patients_assessed"),
        ],
        PATIENT_KEYS,
    )
    cells = cells.astype(dict.fromkeys(PHQ9_MEASURES, "int64"))
    out = cells[keys].copy()
    for measure in PHQ9_MEASURES:
        out[measure] = published_counts(cells[measure], hidden[measure])
    assessed = cells["patients_assessed"].where(cells["patients_assessed"] > 0)
    out["pct_response"] = np.where(
        hidden["responders"] | hidden["patients_assessed"], np.nan, 100 * cells["responders"] / assessed
    )
    out["pct_remission"] = np.where(
        hidden["remitters"] | hidden["patients_assessed"], np.nan, 100 * cells["remitters"] / assessed
    )
    return PublishedTable(
        "phq9_outcomes",
        "PHQ-9 response (>= 50 % drop) and remission (total < 5)",
        out,
        counts=tuple(PHQ9_MEASURES),
        filters=tuple(PATIENT_KEYS),
        notes="After induction = before the infusion after the induction series; a 30-day window has few such "
        "read-outs yet. Item 9 worsened = item 9 above the patient's baseline.",
    )


def phq9_trajectories_view(phq9_trajectories: pd.DataFrame) -> PublishedTable:
    frame = phq9_trajectories.reset_index(drop=True)
    responses, patients = primary_only(frame["responses"]), primary_only(frame["patients"])
    withheld = (responses.isna() | patients.isna()).to_numpy()
    out = pd.DataFrame(
        {
            "protocol": frame["protocol"].astype(str),
            "outcome_class": frame["outcome_class"].astype(str),
            "infusion_label": frame["infusion_label"].astype(str),
            "infusion_order": frame["infusion_order"].astype("int64"),
            "responses": responses,
            "patients": patients,
        }
    )
    for column in ("mean", "median", "p25", "p75"):
        out[column] = np.where(withheld, np.nan, frame[column].astype(float))
    return PublishedTable(
        "phq9_trajectories",
        "PHQ-9 total by infusion number and outcome class",
        out,
        counts=("responses", "patients"),
        filters=("protocol",),
        notes="Outcome class at the last assessment (response, remission, no response; no baseline / no "
        "follow-up when it cannot be judged).",
    )


def suicidality_view(listing: pd.DataFrame) -> PublishedTable:
    """Suicidality flags (and distinct patients) per clinic and protocol: counts only, no listing."""
    keys = [*PATIENT_KEYS, "category"]
    base = _suicidality_categories(listing)
    rows = []
    for rolled in ([], ["clinic_id"], ["protocol"], PATIENT_KEYS):
        by = [k for k in keys if k not in rolled]
        grouped = base.groupby(by, sort=False).agg(flags=("flag", "size"), patients=("patient_token", "nunique"))
        rows.append(grouped.reset_index().assign(**dict.fromkeys(rolled, ALL)))
    cells = pd.concat(rows, ignore_index=True)[[*keys, "flags", "patients"]] if rows else pd.DataFrame()
    if cells.empty:
        cells = pd.DataFrame({k: pd.Series(dtype=str) for k in keys} | {"flags": [], "patients": []})
    cells[keys] = cells[keys].astype(str)
    relations = [Relation(d, ("flags", "patients")) for d in PATIENT_KEYS] + [
        Relation("category", ("flags",), total="any_positive", parts=("phq9_item9", "cssrs_high_risk")),
        Relation(
            "category", ("flags",), total="any_positive", parts=("treatment_emergent", "not_worse", "no_baseline")
        ),
    ]
    result = suppress_cells(cells, keys, ["flags", "patients"], relations)
    out = result.cells[keys].copy()
    out["category_label"] = out["category"].map(SUICIDALITY_CATEGORIES)
    out["flags"] = published_counts(result.cells["flags"], result.suppressed)
    out["patients"] = published_counts(result.cells["patients"], result.suppressed)
    order = {c: i for i, c in enumerate(SUICIDALITY_CATEGORIES)}
    out = out.sort_values([*PATIENT_KEYS, "category"], key=lambda s: s.map(order) if s.name == "category" else s)
    return PublishedTable(
        "suicidality_flags",
        "Suicidality flags (PHQ-9 item 9, C-SSRS): screens and patients",
        out.reset_index(drop=True),
        counts=("flags", "patients"),
        filters=tuple(PATIENT_KEYS),
        notes="Every positive screen gets a same-day review; only treatment-emergent ones count as adverse "
        "events. Ideation present before treatment is the illness being treated.",
    )


def _suicidality_categories(listing: pd.DataFrame) -> pd.DataFrame:
    """One row per (flag, category it belongs to)."""
    if listing.empty:
        return pd.DataFrame(columns=[*PATIENT_KEYS, "category", "flag", "patient_token"])
    frame = listing.reset_index(drop=True)
    frame = frame.assign(flag=np.arange(len(frame)), clinic_id=frame["clinic_id"].astype(str))
    frame["protocol"] = frame["protocol"].astype(str)
    positive = frame["flag_kind"].astype(str) == "positive"
    emergent = frame["treatment_emergent"].astype("boolean")
    membership = {
        "any_positive": positive,
        "phq9_item9": positive & (frame["rule"].astype(str) == "phq9_item9"),
        "cssrs_high_risk": positive & (frame["rule"].astype(str) == "cssrs_high_risk"),
        "treatment_emergent": positive & emergent.fillna(False).astype(bool),
        "not_worse": positive & (~emergent).fillna(False).astype(bool),
        "no_baseline": positive & emergent.isna().to_numpy(),
        "unanswered": ~positive,
    }
    parts = [
        frame.loc[mask, [*PATIENT_KEYS, "flag", "patient_token"]].assign(category=c) for c, mask in membership.items()
    ]
    return pd.concat(parts, ignore_index=True)


def serious_listing_view(listing: pd.DataFrame, bucket_labels: list[str]) -> PublishedTable:
    """Serious adverse events, one row each: pseudonymous token, course day, infusion number, no dates."""
    frame = listing.reset_index(drop=True)
    number = pd.to_numeric(frame["infusion_number"], errors="coerce")
    grade = pd.to_numeric(frame["ctcae_grade"], errors="coerce")
    severity = [
        "not_graded" if pd.isna(g) else f"v{v} G{int(g)}"
        for g, v in zip(grade, frame["ctcae_version"].astype(str), strict=True)
    ]
    out = pd.DataFrame(
        {
            "patient_token": frame["patient_token"].astype(str),
            "clinic_id": frame["clinic_id"].astype(str),
            "protocol": frame["protocol"].astype(str),
            "infusion_number": number.astype("Int64"),
            "infusion_bucket": [bucket_of(n, bucket_labels) for n in number],
            "course_day": pd.to_numeric(frame["course_day"], errors="coerce").astype("Int64"),
            "onset_minutes_from_start": pd.to_numeric(frame["onset_minutes_from_start"], errors="coerce"),
            "term": frame["term_label"].astype(str),
            "body_system": frame["body_system"].astype(str),
            "severity": severity,
            "seriousness_criteria": frame["seriousness_criteria"].astype(str),
            "relatedness": frame["relatedness"].astype(str),
            "action_taken": frame["action_taken"].astype(str),
            "outcome": frame["outcome"].astype(str),
            "origin": frame["origin"].astype(str),
        }
    )
    out = out.sort_values(["clinic_id", "patient_token", "course_day", "onset_minutes_from_start"], kind="stable")
    return PublishedTable(
        "serious_event_listing",
        "Serious adverse events (pseudonymous listing)",
        out.reset_index(drop=True),
        filters=("clinic_id", "protocol", "infusion_bucket", "severity", "relatedness"),
        notes="Tokens are random (not derived from any identifier); time is the day of the course and minutes "
        "from the start of dosing. Person-level by design: narrow filters show few rows.",
    )


def bucket_of(number: float, labels: list[str]) -> str:
    """The infusion bucket label ("1", "4-6", "7+") an infusion number falls in ("unknown" if none)."""
    if pd.isna(number):
        return "unknown"
    for label in labels:
        low, high = _bucket_range(label)
        if low is not None and low <= number <= high:
            return label
    return "unknown"


def _bucket_range(label: str) -> tuple[float | None, float]:
    text = str(label)
    try:
        if text.endswith("+"):
            return float(text[:-1]), float("inf")
        if "-" in text:
            low, high = text.split("-", 1)
            return float(low), float(high)
        return float(text), float(text)
    except ValueError:
        return None, 0.0


def quality_banner(manifest: dict[str, Any]) -> dict[str, Any]:
    """Data-quality figures for the banner, counts suppressed like every other count (no totals shown)."""
    quality = manifest.get("data_quality") or {}
    as_of = manifest.get("as_of")
    as_of_day = date.fromisoformat(str(as_of)[:10]) if as_of else None
    behind = {}
    for source, day in sorted((quality.get("latest_service_date_by_source") or {}).items()):
        behind[source] = (as_of_day - date.fromisoformat(str(day)[:10])).days if as_of_day else None
    statuses = {
        source: {status: _banner_count(n) for status, n in sorted(counts.items())}
        for source, counts in sorted((quality.get("batches_by_source_status") or {}).items())
    }
    return {
        "as_of": as_of,
        "rows_quarantined_by_source": {
            s: _banner_count(n) for s, n in sorted((quality.get("rows_quarantined_by_source") or {}).items())
        },
        "batches_by_source_status": statuses,
        "batches_stopped_by_gate": _banner_count(quality.get("batches_stopped_by_gate", 0)),
        "files_quarantined": _banner_count(quality.get("files_quarantined", 0)),
        "batches_unreconciled": _banner_count(quality.get("batches_unreconciled", 0)),
        "days_behind_by_source": behind,
        "sessions_without_vital_signs": _banner_count(quality.get("sessions_without_vital_signs", 0)),
        "sessions_not_staged_with_readings": _banner_count(quality.get("sessions_not_staged_with_readings", 0)),
        "events_without_staged_session": _banner_count(quality.get("events_without_staged_session", 0)),
        "unmapped_terms": list(quality.get("unmapped_terms") or []),
    }


def _banner_count(value: Any) -> int | str:
    number = int(value or 0)
    return SUPPRESSED_LABEL if is_small([number])[0] else number
