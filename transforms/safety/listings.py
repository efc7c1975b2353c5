"""Person-level listings for publication: serious events and suicidality flags, pseudonymous.

No names, MRNs, patient or session ids, dates or free text: a patient is a random token (`pseudonyms`),
time is the day of the course (days since enrolment, in the clinic's local calendar), the infusion number
and minutes from the start of dosing (DOMAIN.md Privacy; safety.md 6.3).
"""

from __future__ import annotations

import pandas as pd

SERIOUS_COLUMNS = [
    "patient_token",
    "clinic_id",
    "protocol",
    "infusion_number",
    "course_day",
    "onset_minutes_from_start",
    "origin",
    "term",
    "term_label",
    "body_system",
    "ctcae_grade",
    "ctcae_version",
    "seriousness_criteria",
    "relatedness",
    "action_taken",
    "outcome",
]
SUICIDALITY_COLUMNS = [
    "patient_token",
    "clinic_id",
    "protocol",
    "infusion_number",
    "course_day",
    "instrument",
    "rule",
    "flag_kind",
    "value",
    "baseline_value",
    "treatment_emergent",
    "staff_recorded_ae",
]


def course_days(sessions: pd.DataFrame, patients: pd.DataFrame, clinics: pd.DataFrame) -> pd.Series:
    """session_id -> day of the patient's course (0 = enrolment day), in the clinic's local calendar.

    Without an enrolment date the patient's first staged session is day 0.
    """
    if sessions.empty:
        return pd.Series(dtype="Int64", name="course_day")
    zones = clinics.drop_duplicates("clinic_id").set_index("clinic_id")["timezone"] if not clinics.empty else {}
    frame = sessions[["session_id", "patient_id", "clinic_id", "started_at"]].copy()
    frame["zone"] = frame["clinic_id"].map(zones).astype(object).fillna("UTC").astype(str)
    local = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")
    for zone, group in frame.groupby("zone"):
        local.loc[group.index] = group["started_at"].dt.tz_convert(zone).dt.tz_localize(None).dt.normalize()
    enrolled = patients[["patient_id", "enrolled_on"]].drop_duplicates("patient_id")
    enrolled = enrolled.assign(enrolled_on=pd.to_datetime(enrolled["enrolled_on"], errors="coerce"))
    joined = frame[["patient_id"]].merge(enrolled, on="patient_id", how="left")
    start = pd.Series(joined["enrolled_on"].to_numpy(), index=frame.index).astype("datetime64[us]")
    first = local.groupby(frame["patient_id"]).transform("min").astype("datetime64[us]")
    days = (local - start.fillna(first)).dt.days
    return pd.Series(days.astype("Int64").to_numpy(), index=frame["session_id"].to_numpy(), name="course_day")


def serious_event_listing(events: pd.DataFrame, tokens: pd.Series, days: pd.Series) -> pd.DataFrame:
    """Every serious adverse event, any origin; `tokens`: patient_id -> token, `days`: session_id -> day."""
    serious = events.loc[events["serious"].fillna(False).astype(bool)].copy()
    serious["patient_token"] = serious["patient_id"].map(tokens)
    serious["course_day"] = serious["session_id"].map(days).astype("Int64")
    listing = serious[SERIOUS_COLUMNS].sort_values(
        ["clinic_id", "patient_token", "course_day", "onset_minutes_from_start", "term"], kind="stable"
    )
    return listing.reset_index(drop=True)


def suicidality_listing(
    flags: pd.DataFrame, sessions: pd.DataFrame, events: pd.DataFrame, tokens: pd.Series, days: pd.Series
) -> pd.DataFrame:
    """Every positive or unknown suicidality answer, with whether staff recorded the ideation as an AE."""
    context = sessions.set_index("session_id")[["protocol", "infusion_number"]]
    listing = flags.join(context, on="session_id")
    listing["protocol"] = listing["protocol"].astype(object).fillna("unknown")
    listing["infusion_number"] = listing["infusion_number"].astype("Int64")
    listing["patient_token"] = listing["patient_id"].map(tokens)
    listing["course_day"] = listing["session_id"].map(days).astype("Int64")
    recorded = events.loc[
        (events["origin"] == "staff_recorded") & (events["term"] == "suicidal_ideation"), "session_id"
    ]
    listing["staff_recorded_ae"] = listing["session_id"].isin(set(recorded))
    listing = listing[SUICIDALITY_COLUMNS].sort_values(
        ["clinic_id", "patient_token", "course_day", "instrument"], kind="stable"
    )
    return listing.reset_index(drop=True)
