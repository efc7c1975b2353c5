"""Runs of consecutive readings that meet a condition, per session, without a Python loop over readings.

A run is a maximal stretch of time-ordered readings of one session that all meet the condition; a reading
that does not meet it, a new session, or (optionally) a gap longer than `max_minutes_apart` ends it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def run_positions(
    session_ids: pd.Series, meets: pd.Series, minutes: pd.Series, max_minutes_apart: pd.Series | None = None
) -> tuple[pd.Series, pd.Series]:
    """(run id, 0-based position in its run) for every reading; readings must be sorted by session and time.

    Readings that do not meet the condition get their own run id too; only use positions where `meets`.
    `max_minutes_apart` may vary per reading (per protocol); NaN means no limit.
    """
    new_session = session_ids.ne(session_ids.shift())
    changed = meets.ne(meets.shift())
    starts = new_session | changed
    if max_minutes_apart is not None:
        gap = minutes.diff()
        starts |= (gap > max_minutes_apart.to_numpy()).fillna(False) & meets
    run_id = starts.cumsum()
    position = run_id.groupby(run_id.to_numpy()).cumcount()
    return run_id, position


def longest_span_minutes(session_ids: pd.Series, meets: pd.Series, minutes: pd.Series) -> pd.Series:
    """Per session, the longest time from the first to the last reading of a run that meets the condition.

    A run of one reading spans 0 minutes; sessions with no such reading are absent from the result.
    """
    run_id, _ = run_positions(session_ids, meets, minutes)
    frame = pd.DataFrame({"session_id": session_ids, "run": run_id, "minutes": minutes})[meets.to_numpy()]
    if frame.empty:
        return pd.Series(dtype=float, name="span_min")
    spans = frame.groupby(["session_id", "run"], sort=False)["minutes"].agg(["min", "max"])
    spans["span"] = spans["max"] - spans["min"]
    return spans.groupby(level="session_id")["span"].max().rename("span_min").astype(np.float64)
