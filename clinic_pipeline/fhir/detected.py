"""The adverse events the safety rules detected, as the FHIR mapping wants them.

Source: the `adverse_events` safety mart (`marts/adverse_events.parquet`). Sent as FHIR AdverseEvent: events
detected from the readings (severe BP, sustained tachycardia, SpO2 low) or flagged from questionnaires
(treatment-emergent suicidal ideation) that count as adverse events and that staff did not record themselves
(a staff record of the same term and session is already exported; it is never sent twice). Unanswered
suicidality questions are a data-quality flag, not an event: they are listed on the dashboard, not sent.
"""

from __future__ import annotations

import pandas as pd

from clinic_pipeline.lake import Lake

DERIVED_BATCH = "safety-rules"  # Provenance: derived by the pipeline's rules from the staged tables
COLUMNS = [
    "event_key",
    "rule",
    "session_id",
    "patient_id",
    "code_system",
    "code",
    "label",
    "detected_at",
    "batch_id",
    "ctcae_grade",
    "ctcae_version",
]


def detected_events(lake: Lake, sessions: pd.DataFrame) -> pd.DataFrame:
    path = lake.path("marts", "adverse_events.parquet")
    if not path.exists() or sessions.empty:
        return pd.DataFrame(columns=COLUMNS)
    events = pd.read_parquet(str(path))
    derived = events[
        events["origin"].ne("staff_recorded")
        & events["counts_in_incidence"].astype(bool)
        & events["matched_staff_ae_id"].isna()
    ]
    started = derived["session_id"].map(sessions.drop_duplicates("session_id").set_index("session_id")["started_at"])
    return pd.DataFrame(
        {
            "event_key": derived["session_id"] + ":" + derived["source_rule"] + ":" + derived["term"],
            "rule": derived["source_rule"],
            "session_id": derived["session_id"],
            "patient_id": derived["patient_id"],
            "code_system": derived["code_system"],
            "code": derived["code"],
            "label": derived["term_label"],
            "detected_at": started + pd.to_timedelta(derived["onset_minutes_from_start"], unit="min"),
            "batch_id": DERIVED_BATCH,
            "ctcae_grade": derived["ctcae_grade"],
            "ctcae_version": derived["ctcae_version"],
        }
    ).reset_index(drop=True)
