"""Statistical process control of adverse events over time, network-wide and per clinic.

- P chart (weekly): proportion of infusions with any adverse event. Centre p̄ = Σx / Σn over the series;
  limits p̄ ± k·√(p̄(1-p̄)/nᵢ) with the week's own nᵢ, clipped to [0, 1] (DOMAIN.md; safety.md 5.5).
- U chart (weekly): adverse events per 100 infusions. ū = Σc / Σn per infusion; limits ū ± k·√(ū/nᵢ), lower
  clipped at 0; values, centre and limits are reported per 100 infusions.
- G chart: infusions between consecutive severe events (geometric). ḡ = mean gap; limits
  ḡ ± k·√(ḡ(ḡ+1)), lower clipped at 0 (Benneyan's g chart); centre for run rules = the geometric median
  ln 0.5 / ln(1 - p) - 1 with p = 1/(ḡ+1), because the gaps are skewed (qicharts2 does the same).
  The infusions since the last severe event are a last, open row (`open_interval`), outside the limits.
Special causes: a point beyond a limit; a run of `run_length` (8) or more points strictly on one side of
the centre (a point on the centre line breaks the run). Week = ISO week (Monday) of the session start in UTC;
`week_complete` is False for a week still running at the as-of time (read its point with care).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NETWORK = "network"
WEEK_COLUMNS = [
    "chart",
    "scope",
    "week_start",
    "week_index",
    "week_complete",
    "n",
    "count",
    "value",
    "center",
    "lcl",
    "ucl",
    "beyond_limits",
    "run_signal",
    "signal",
]
G_COLUMNS = [
    "scope",
    "event_index",
    "open_interval",
    "infusions_between",
    "center",
    "center_median",
    "lcl",
    "ucl",
    "beyond_limits",
    "run_signal",
    "signal",
]


def run_signal(values: pd.Series, center: pd.Series, series: pd.Series, run_length: int) -> pd.Series:
    """True for every point of a run of >= run_length points strictly on one side of the centre."""
    side = np.sign(values.to_numpy() - center.to_numpy())
    side_s = pd.Series(side, index=values.index)
    new_run = side_s.ne(side_s.shift()) | series.ne(series.shift())
    run = new_run.cumsum()
    length = run.map(run.value_counts())
    return (length >= run_length) & (side_s != 0)


def _weekly_counts(outcomes: pd.DataFrame, scope: pd.Series) -> pd.DataFrame:
    day = outcomes["started_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    week = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    frame = outcomes.assign(scope=scope.to_numpy(), week_start=week)
    return (
        frame.groupby(["scope", "week_start"])
        .agg(n=("session_id", "size"), sessions_with_ae=("any_ae", "sum"), events=("ae_count", "sum"))
        .reset_index()
    )


def weekly_charts(
    outcomes: pd.DataFrame, as_of: pd.Timestamp | None, sigma: float = 3.0, run_length: int = 8
) -> pd.DataFrame:
    """P and U chart points per week, for the network and each clinic (long: one row per chart point)."""
    if outcomes.empty:
        return pd.DataFrame(columns=WEEK_COLUMNS)
    counts = pd.concat(
        [
            _weekly_counts(outcomes, pd.Series(NETWORK, index=outcomes.index)),
            _weekly_counts(outcomes, outcomes["clinic_id"].astype(str)),
        ],
        ignore_index=True,
    )
    first_week = counts["week_start"].min()
    counts["week_index"] = ((counts["week_start"] - first_week).dt.days // 7 + 1).astype(int)
    end = pd.Timestamp(as_of).tz_convert("UTC").tz_localize(None) if as_of is not None else None
    counts["week_complete"] = True if end is None else (counts["week_start"] + pd.Timedelta(days=7) <= end)
    charts = [_p_chart(counts, sigma), _u_chart(counts, sigma)]
    points = pd.concat(charts, ignore_index=True)
    points = points.sort_values(["chart", "scope", "week_start"], kind="stable").reset_index(drop=True)
    series = points["chart"] + "|" + points["scope"]
    points["run_signal"] = run_signal(points["value"], points["center"], series, run_length)
    points["beyond_limits"] = (points["value"] > points["ucl"]) | (points["value"] < points["lcl"])
    points["signal"] = points["beyond_limits"] | points["run_signal"]
    points["week_start"] = points["week_start"].dt.date.astype(str)
    return points[WEEK_COLUMNS]


def _p_chart(counts: pd.DataFrame, sigma: float) -> pd.DataFrame:
    totals = counts.groupby("scope")[["n", "sessions_with_ae"]].transform("sum")
    p_bar = totals["sessions_with_ae"] / totals["n"]
    half = sigma * np.sqrt(p_bar * (1 - p_bar) / counts["n"])
    return counts.assign(
        chart="p_sessions_with_ae",
        count=counts["sessions_with_ae"],
        value=counts["sessions_with_ae"] / counts["n"],
        center=p_bar,
        lcl=(p_bar - half).clip(lower=0.0),
        ucl=(p_bar + half).clip(upper=1.0),
    )


def _u_chart(counts: pd.DataFrame, sigma: float) -> pd.DataFrame:
    totals = counts.groupby("scope")[["n", "events"]].transform("sum")
    u_bar = totals["events"] / totals["n"]
    half = sigma * np.sqrt(u_bar / counts["n"])
    return counts.assign(
        chart="u_events_per_100_infusions",
        count=counts["events"],
        value=100 * counts["events"] / counts["n"],
        center=100 * u_bar,
        lcl=100 * (u_bar - half).clip(lower=0.0),
        ucl=100 * (u_bar + half),
    )


def g_chart(outcomes: pd.DataFrame, sigma: float = 3.0, run_length: int = 8) -> pd.DataFrame:
    """Infusions between severe events, network-wide and per clinic (ordered by session start)."""
    ordered = outcomes.sort_values(["started_at", "session_id"], kind="stable").reset_index(drop=True)
    parts = [_g_series(ordered, NETWORK, sigma, run_length)]
    parts += [
        _g_series(group.reset_index(drop=True), str(clinic), sigma, run_length)
        for clinic, group in ordered.groupby("clinic_id", sort=True)
    ]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True)[G_COLUMNS] if parts else pd.DataFrame(columns=G_COLUMNS)


def _g_series(ordered: pd.DataFrame, scope: str, sigma: float, run_length: int) -> pd.DataFrame:
    """One G chart over sessions already in time order."""
    if ordered.empty:
        return pd.DataFrame(columns=G_COLUMNS)
    positions = np.flatnonzero(ordered["severe_event"].to_numpy())
    gaps = np.diff(np.concatenate([[-1], positions])) - 1  # infusions without a severe event in between
    since_last = len(ordered) - 1 - (positions[-1] if len(positions) else -1)
    closed = pd.DataFrame({"infusions_between": gaps.astype(float), "open_interval": False})
    open_row = pd.DataFrame({"infusions_between": [float(since_last)], "open_interval": [True]})
    series = pd.concat([closed, open_row], ignore_index=True)
    series["scope"] = scope
    series["event_index"] = np.arange(1, len(series) + 1)
    g_bar = float(gaps.mean()) if len(gaps) else np.nan
    spread = sigma * np.sqrt(g_bar * (g_bar + 1)) if len(gaps) else np.nan
    series["center"] = g_bar
    p = 1 / (g_bar + 1) if len(gaps) else np.nan
    series["center_median"] = max(0.0, np.log(0.5) / np.log(1 - p) - 1) if len(gaps) and 0 < p < 1 else np.nan
    series["lcl"] = max(0.0, g_bar - spread) if len(gaps) else np.nan
    series["ucl"] = g_bar + spread
    closed_mask = ~series["open_interval"]
    series["beyond_limits"] = closed_mask & (
        (series["infusions_between"] > series["ucl"]) | (series["infusions_between"] < series["lcl"])
    )
    runs = run_signal(
        series["infusions_between"].where(closed_mask),
        series["center_median"],
        pd.Series(closed_mask.astype(int)),
        run_length,
    )
    series["run_signal"] = runs & closed_mask
    series["signal"] = series["beyond_limits"] | series["run_signal"]
    return series
