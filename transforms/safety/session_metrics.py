"""Per-session vital-sign metrics: baseline, peaks, time to peak, lowest SpO2, time back to baseline.

Baseline = the last reading before dosing (minute < 0), the one the dosing decision rests on. Peaks and the
lowest SpO2 are taken over post-dose readings (minute >= 0); a tie goes to the earliest reading.
"Back to baseline": a post-dose reading is within baseline when SBP <= baseline + tolerance and DBP <=
baseline + tolerance (per protocol, `monitoring.baseline_*_tolerance_mmhg`); the time back to baseline is the
first reading after the last reading outside it (NaN when the BP never left baseline, or had not come back
by the last reading: `bp_back_to_baseline` tells the two apart).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transforms.safety.rule_set import SafetyRules

BASELINE = {
    "sbp_mmhg": "baseline_sbp_mmhg",
    "dbp_mmhg": "baseline_dbp_mmhg",
    "map_mmhg": "baseline_map_mmhg",
    "hr_bpm": "baseline_hr_bpm",
    "spo2_pct": "baseline_spo2_pct",
}


def _extreme(post: pd.DataFrame, column: str, largest: bool, name: str) -> pd.DataFrame:
    """Value and minute of each session's highest (or lowest) reading of `column`, earliest on ties."""
    ranked = post.dropna(subset=[column]).sort_values(
        ["session_id", column, "minutes_from_start"], ascending=[True, not largest, True], kind="stable"
    )
    first = ranked.drop_duplicates("session_id").set_index("session_id")
    return pd.DataFrame({name: first[column], f"{name}_minutes_from_start": first["minutes_from_start"]})


def vital_sign_metrics(readings: pd.DataFrame, rules: SafetyRules) -> pd.DataFrame:
    """One row per session that has readings (indexed by session_id)."""
    by_session = readings.groupby("session_id", sort=True)
    counts = pd.DataFrame(
        {
            "readings": by_session.size(),
            "predose_readings": (~readings["is_post_dose"]).groupby(readings["session_id"]).sum(),
            "postdose_readings": readings["is_post_dose"].groupby(readings["session_id"]).sum(),
            "last_reading_minutes_from_start": by_session["minutes_from_start"].max(),
        }
    )
    base = readings.loc[readings["is_baseline"]].set_index("session_id")
    baseline = base[list(BASELINE)].rename(columns=BASELINE)
    baseline["baseline_minutes_from_start"] = base["minutes_from_start"]
    post = readings.loc[readings["is_post_dose"]]
    metrics = counts.join(baseline).join(
        [
            _extreme(post, "sbp_mmhg", True, "peak_sbp_mmhg"),
            _extreme(post, "dbp_mmhg", True, "peak_dbp_mmhg"),
            _extreme(post, "hr_bpm", True, "peak_hr_bpm"),
            _extreme(post, "spo2_pct", False, "lowest_spo2_pct"),
        ]
    )
    metrics["delta_sbp_mmhg"] = metrics["peak_sbp_mmhg"] - metrics["baseline_sbp_mmhg"]
    metrics["delta_dbp_mmhg"] = metrics["peak_dbp_mmhg"] - metrics["baseline_dbp_mmhg"]
    metrics = metrics.join(_back_to_baseline(post, metrics, rules))
    for column in ("readings", "predose_readings", "postdose_readings"):
        metrics[column] = metrics[column].astype(int)
    metrics.index.name = "session_id"
    return metrics


def _back_to_baseline(post: pd.DataFrame, metrics: pd.DataFrame, rules: SafetyRules) -> pd.DataFrame:
    keys = post["rules_key"]
    monitoring = {k: p.monitoring for k, p in rules.all_protocols().items()}
    sbp_tol = rules.per_key(keys, {k: m.baseline_sbp_tolerance_mmhg for k, m in monitoring.items()}).astype(float)
    dbp_tol = rules.per_key(keys, {k: m.baseline_dbp_tolerance_mmhg for k, m in monitoring.items()}).astype(float)
    base = metrics.reindex(post["session_id"].to_numpy())
    outside = (post["sbp_mmhg"].to_numpy() > base["baseline_sbp_mmhg"].to_numpy() + sbp_tol) | (
        post["dbp_mmhg"].to_numpy() > base["baseline_dbp_mmhg"].to_numpy() + dbp_tol
    )
    frame = pd.DataFrame(
        {
            "session_id": post["session_id"].to_numpy(),
            "minute": post["minutes_from_start"].to_numpy(),
            "outside": outside,
        }
    )
    last_outside = frame.loc[frame["outside"]].groupby("session_id")["minute"].max()
    frame["last_outside"] = frame["session_id"].map(last_outside)
    back = frame.loc[frame["minute"] > frame["last_outside"]].groupby("session_id")["minute"].min()
    has_baseline = metrics["baseline_sbp_mmhg"].notna()
    result = pd.DataFrame(index=metrics.index)
    above = metrics.index.isin(last_outside.index)
    result["bp_above_baseline"] = pd.array(np.where(has_baseline, above, pd.NA), dtype="boolean")
    result["bp_back_to_baseline_min"] = back.reindex(metrics.index)
    back_or_never_left = result["bp_back_to_baseline_min"].notna().to_numpy() | ~above
    # Without a baseline reading the question cannot be answered: NA, never a silent "back to baseline".
    result["bp_back_to_baseline"] = pd.array(np.where(has_baseline, back_or_never_left, pd.NA), dtype="boolean")
    return result
