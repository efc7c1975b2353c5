"""Quantiles per group for the distribution marts (curves, CADSS, PHQ-9, readiness), empty-safe."""

from __future__ import annotations

import pandas as pd
from pandas.core.groupby import SeriesGroupBy


def quantile_columns(grouped: SeriesGroupBy, names: dict[str, float]) -> pd.DataFrame:
    """One column per named quantile (e.g. {"p10": 0.1}), one row per group; no rows when there is no group."""
    if grouped.ngroups == 0:
        return pd.DataFrame({name: pd.Series(dtype=float) for name in names}, index=grouped.size().index)
    quantiles = grouped.quantile(list(names.values())).unstack()
    return quantiles.rename(columns={q: name for name, q in names.items()})[list(names)]
