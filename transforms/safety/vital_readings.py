"""Monitor readings prepared for the safety rules: one row per reading, ordered in time within each session.

Minutes from the start of dosing are recomputed from the staged session's `started_at` (an EHR correction of
the start time reaches the rules even though the readings were staged before it); readings whose session row
is still held in quarantine keep the minutes the ingest computed and are evaluated with the default rules.
"""

from __future__ import annotations

import pandas as pd

from transforms.safety.rule_set import DEFAULT_PROTOCOL, SafetyRules

READING_COLUMNS = ["sbp_mmhg", "dbp_mmhg", "map_mmhg", "hr_bpm", "spo2_pct"]


def session_frame(sessions: pd.DataFrame, rules: SafetyRules) -> pd.DataFrame:
    """Staged sessions with their rules key and the dosing / discharge times in minutes from the start."""
    frame = sessions.copy()
    frame["rules_key"] = rules.rule_key(frame["protocol"])
    frame["infusion_end_min"] = (frame["infusion_ended_at"] - frame["started_at"]).dt.total_seconds() / 60.0
    frame["discharge_min"] = (frame["discharged_at"] - frame["started_at"]).dt.total_seconds() / 60.0
    return frame.sort_values("session_id", kind="stable").reset_index(drop=True)


def prepare_readings(vital_signs: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """Readings with `rules_key`, `is_post_dose` and `is_baseline` (the last reading before dosing).

    `sessions` is the output of `session_frame`. Sorted by session, observation time and control id, so
    "consecutive" means consecutive in time (an out-of-order HL7 delivery does not break a run).
    """
    columns = ["session_id", "observed_at", "control_id", "minutes_from_start", *READING_COLUMNS]
    readings = vital_signs[[c for c in columns if c in vital_signs]].copy()
    for column in READING_COLUMNS:
        if column not in readings:
            readings[column] = float("nan")
    timing = sessions.set_index("session_id")[["started_at", "rules_key"]]
    readings = readings.join(timing, on="session_id")
    staged = readings["started_at"].notna()
    readings["session_staged"] = staged
    readings.loc[staged, "minutes_from_start"] = (
        readings.loc[staged, "observed_at"] - readings.loc[staged, "started_at"]
    ).dt.total_seconds() / 60.0
    readings["rules_key"] = readings["rules_key"].fillna(DEFAULT_PROTOCOL)
    readings = readings.drop(columns=["started_at"])
    readings = readings.sort_values(["session_id", "observed_at", "control_id"], kind="stable")
    readings = readings.reset_index(drop=True)
    # A reading whose session start is unknown (its EHR row held without a start time) is evaluated as
    # post-dose: a dangerous reading is never dropped because the dosing time is unknown.
    readings["is_post_dose"] = ~(readings["minutes_from_start"] < 0)
    pre = readings.loc[readings["minutes_from_start"] < 0]
    baseline_index = pre.groupby("session_id", sort=False).tail(1).index
    readings["is_baseline"] = readings.index.isin(baseline_index)
    return readings
