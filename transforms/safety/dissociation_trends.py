"""CADSS by infusion number: how dissociation changes over the course (DOMAIN.md: x0.7 on infusion 2,
x0.6 after), per protocol and rating timepoint.

Infusion numbers above `cadss_max_infusion_number` (12) are pooled as "13+". Per cell: complete ratings,
mean, median, p25, p75, p10, p90 and how many are above the dissociation threshold (CADSS > 4).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transforms.safety.distribution import quantile_columns

COLUMNS = [
    "protocol",
    "infusion_label",
    "infusion_order",
    "timepoint",
    "ratings",
    "over_threshold",
    "mean",
    "median",
    "p10",
    "p25",
    "p75",
    "p90",
]


def infusion_label(numbers: pd.Series, max_number: int) -> tuple[pd.Series, pd.Series]:
    """("1".."12", "13+") labels and their sort order."""
    order = numbers.clip(upper=max_number + 1).astype(int)
    label = np.where(order > max_number, f"{max_number + 1}+", order.astype(str))
    return pd.Series(label, index=numbers.index), order


def cadss_by_infusion(ratings: pd.DataFrame, sessions: pd.DataFrame, over: pd.Series, max_number: int) -> pd.DataFrame:
    """`ratings` from `dissociation.cadss_ratings`; `over`: session_id -> CADSS threshold of its protocol."""
    context = sessions.set_index("session_id")[["protocol", "infusion_number"]]
    frame = ratings.loc[ratings["is_complete"].astype(bool) & ratings["total_score"].notna()].join(
        context, on="session_id", how="inner"
    )
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame["infusion_label"], frame["infusion_order"] = infusion_label(frame["infusion_number"], max_number)
    frame["over"] = frame["total_score"] > frame["session_id"].map(over.astype(float))
    keys = ["protocol", "infusion_label", "infusion_order", "timepoint"]
    grouped = frame.groupby(keys, sort=True)
    stats = grouped["total_score"].agg(ratings="size", mean="mean", median="median")
    stats["over_threshold"] = grouped["over"].sum().astype(int)
    stats = stats.join(quantile_columns(grouped["total_score"], {"p10": 0.1, "p25": 0.25, "p75": 0.75, "p90": 0.9}))
    result = stats.reset_index()
    return result.sort_values(["protocol", "infusion_order", "timepoint"], kind="stable").reset_index(drop=True)[
        COLUMNS
    ]
