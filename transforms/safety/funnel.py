"""Funnel plot of clinics: the proportion of infusions with an event against the clinic's volume.

Target = the network proportion p̄ (Σx / Σn over all clinics); limits p̄ ± z·√(p̄(1-p̄)/n) for z = 1.96
(95 %) and 3.09 (99.8 %), clipped to [0, 1] (Spiegelhalter's funnel, normal approximation; safety.md 5.5).
Two measures: infusions with any adverse event, and infusions with a severe event. A clinic outside the
99.8 % limits is a special cause worth a look; outside 95 % alone is expected for ~1 clinic in 20.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MEASURES = {"sessions_with_any_ae": "any_ae", "sessions_with_severe_event": "severe_event"}


def _limits(p_bar: float, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    half = z * np.sqrt(p_bar * (1 - p_bar) / n)
    return np.clip(p_bar - half, 0, 1), np.clip(p_bar + half, 0, 1)


def funnel_clinics(outcomes: pd.DataFrame, z_inner: float, z_outer: float) -> pd.DataFrame:
    """One row per (measure, clinic): n, count, proportion, target and both pairs of limits."""
    rows = []
    for measure, column in MEASURES.items():
        per_clinic = outcomes.groupby("clinic_id").agg(n=("session_id", "size"), count=(column, "sum"))
        p_bar = per_clinic["count"].sum() / per_clinic["n"].sum() if len(per_clinic) else np.nan
        n = per_clinic["n"].to_numpy(dtype=float)
        lo95, hi95 = _limits(p_bar, n, z_inner)
        lo998, hi998 = _limits(p_bar, n, z_outer)
        proportion = per_clinic["count"] / per_clinic["n"]
        rows.append(
            per_clinic.reset_index().assign(
                measure=measure,
                proportion=proportion.to_numpy(),
                target=p_bar,
                lower_95=lo95,
                upper_95=hi95,
                lower_998=lo998,
                upper_998=hi998,
                position=np.select(
                    [proportion > hi998, proportion < lo998, proportion > hi95, proportion < lo95],
                    ["above_998", "below_998", "above_95", "below_95"],
                    default="within",
                ),
            )
        )
    columns = [
        "measure",
        "clinic_id",
        "n",
        "count",
        "proportion",
        "target",
        "lower_95",
        "upper_95",
        "lower_998",
        "upper_998",
        "position",
    ]
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.concat(rows, ignore_index=True)[columns].astype({"n": "int64", "count": "int64"})


def funnel_limits(clinics: pd.DataFrame, z_inner: float, z_outer: float, points: int = 60) -> pd.DataFrame:
    """The funnel's curves, sampled at ~`points` volumes from 1 to 1.2 x the largest clinic."""
    rows = []
    for measure, group in clinics.groupby("measure", sort=False):
        p_bar = float(group["target"].iloc[0])
        n = np.unique(np.round(np.geomspace(1, max(2.0, 1.2 * group["n"].max()), points)))
        lo95, hi95 = _limits(p_bar, n, z_inner)
        lo998, hi998 = _limits(p_bar, n, z_outer)
        rows.append(
            pd.DataFrame(
                {
                    "measure": measure,
                    "n": n.astype("int64"),
                    "target": p_bar,
                    "lower_95": lo95,
                    "upper_95": hi95,
                    "lower_998": lo998,
                    "upper_998": hi998,
                }
            )
        )
    return (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame(columns=["measure", "n", "target", "lower_95", "upper_95", "lower_998", "upper_998"])
    )
