"""Per infusion session: did it have an adverse event, how many, and a severe event? (SPC and funnel input)

An AE here is an incidence event (`adverse_events.counts_in_incidence`). A severe event is any event of the
session, whatever its origin, that `reporting.severe_event` calls severe (serious; CTCAE grade >= the
minimum outside the exempt terms; a vitals-detected event of a severe reading rule), or a breach of one of
the severe reading rules itself (so a severe rule without a detected term still counts).
"""

from __future__ import annotations

import pandas as pd


def session_outcomes(
    sessions: pd.DataFrame, events: pd.DataFrame, breaches: pd.DataFrame, severe_reading_rules: set[str]
) -> pd.DataFrame:
    """Staged sessions (session_id, clinic_id, protocol, started_at) with ae_count, any_ae, severe_event."""
    out = sessions[["session_id", "clinic_id", "protocol", "started_at"]].copy()
    counted = events.loc[events["counts_in_incidence"]]
    out["ae_count"] = out["session_id"].map(counted.groupby("session_id").size()).fillna(0).astype(int)
    out["any_ae"] = out["ae_count"] > 0
    severe_sessions = set(events.loc[events["severe_event"], "session_id"].dropna())
    severe_sessions |= set(breaches.loc[breaches["rule"].isin(severe_reading_rules), "session_id"])
    out["severe_event"] = out["session_id"].isin(severe_sessions)
    return out.sort_values(["started_at", "session_id"], kind="stable").reset_index(drop=True)
