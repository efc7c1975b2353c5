"""Intra-session vital-sign curves by minute from the start of dosing, and baseline-vs-peak BP shifts.

Curves: readings binned by `reporting.bp_curve_bin_min` (5) minutes from the start of dosing (bin = its lower
edge; the pre-dose baseline at -5 falls in bin -5), per protocol and measure: readings, sessions, mean,
median, p10 and p90. No minimum or maximum (a single patient's value); a bin of few sessions is for the
publication step to suppress (`sessions` is there for that).
Shifts: each session's baseline and peak BP in CTCAE-v5-style bands (worse of SBP and DBP), counted per
protocol, plus the per-session points without identifiers for a shift plot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transforms.safety.distribution import quantile_columns

MEASURES = ["sbp_mmhg", "dbp_mmhg", "hr_bpm", "spo2_pct"]
BP_BANDS = ["<120/<80", "120-139/80-89", "140-159/90-99", "160-179/100-109", ">=180/>=110"]
CURVE_COLUMNS = ["protocol", "minute_bin", "measure", "readings", "sessions", "mean", "median", "p10", "p90"]


def vital_sign_curves(readings: pd.DataFrame, sessions: pd.DataFrame, bin_min: int) -> pd.DataFrame:
    """Long table: one row per (protocol, minute bin, measure) over readings of staged sessions."""
    protocol = readings["session_id"].map(sessions.set_index("session_id")["protocol"].astype(object))
    frame = readings.assign(protocol=protocol).loc[protocol.notna()]
    frame = frame.assign(minute_bin=(np.floor(frame["minutes_from_start"] / bin_min) * bin_min).astype(int))
    long = frame.melt(id_vars=["protocol", "minute_bin", "session_id"], value_vars=MEASURES, var_name="measure")
    long = long.dropna(subset=["value"])
    grouped = long.groupby(["protocol", "minute_bin", "measure"], sort=True)["value"]
    stats = grouped.agg(readings="size", mean="mean", median="median")
    stats["sessions"] = long.groupby(["protocol", "minute_bin", "measure"], sort=True)["session_id"].nunique()
    stats = stats.join(quantile_columns(grouped, {"p10": 0.1, "p90": 0.9}))
    return stats.reset_index()[CURVE_COLUMNS]


def bp_band(sbp: pd.Series, dbp: pd.Series) -> pd.Series:
    level = np.select(
        [
            (sbp >= 180) | (dbp >= 110),
            (sbp >= 160) | (dbp >= 100),
            (sbp >= 140) | (dbp >= 90),
            (sbp >= 120) | (dbp >= 80),
            sbp.notna() & dbp.notna(),
        ],
        [4, 3, 2, 1, 0],
        default=-1,
    )
    return pd.Series(
        np.where(level >= 0, np.array(BP_BANDS, dtype=object)[np.clip(level, 0, 4)], "unknown"), index=sbp.index
    )


def bp_shift_table(session_safety: pd.DataFrame) -> pd.DataFrame:
    """Sessions per (protocol, baseline band, peak band)."""
    frame = session_safety.loc[session_safety["session_staged"]]
    bands = pd.DataFrame(
        {
            "protocol": frame["protocol"].to_numpy(),
            "baseline_band": bp_band(frame["baseline_sbp_mmhg"], frame["baseline_dbp_mmhg"]).to_numpy(),
            "peak_band": bp_band(frame["peak_sbp_mmhg"], frame["peak_dbp_mmhg"]).to_numpy(),
        }
    )
    table = bands.groupby(["protocol", "baseline_band", "peak_band"]).size().rename("sessions").reset_index()
    order = {b: i for i, b in enumerate([*BP_BANDS, "unknown"])}
    return table.sort_values(
        ["protocol", "baseline_band", "peak_band"], key=lambda s: s.map(order) if s.name != "protocol" else s
    ).reset_index(drop=True)


def bp_shift_points(session_safety: pd.DataFrame) -> pd.DataFrame:
    """Baseline and peak BP of each staged session with both, without session or patient identifiers."""
    frame = session_safety.loc[session_safety["session_staged"]].dropna(
        subset=["baseline_sbp_mmhg", "peak_sbp_mmhg", "baseline_dbp_mmhg", "peak_dbp_mmhg"]
    )
    columns = [
        "clinic_id",
        "protocol",
        "infusion_bucket",
        "baseline_sbp_mmhg",
        "peak_sbp_mmhg",
        "baseline_dbp_mmhg",
        "peak_dbp_mmhg",
        "delta_sbp_mmhg",
        "delta_dbp_mmhg",
    ]
    return frame[columns].sort_values(columns, kind="stable").reset_index(drop=True)
