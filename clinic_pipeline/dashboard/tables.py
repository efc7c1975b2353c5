"""Published tables: what one view of the page shows and what its CSV holds, after suppression.

A `PublishedTable` keeps counts as nullable integers (NA = suppressed, shown "<11") and statistics as floats
(NaN = withheld with their count). The page and the CSV are written from the same table, so they cannot
disagree. `rollup` adds the "all" rows of a mart so that every filter combination is a row to suppress.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clinic_pipeline.dashboard.suppression import ALL, SUPPRESSED_LABEL, is_small

FLOAT_DIGITS = 4


@dataclass
class PublishedTable:
    """One table of the page (and one CSV): `counts` are Int64 with NA where suppressed."""

    name: str
    title: str
    frame: pd.DataFrame
    counts: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()  # the page filters this table follows (columns of `frame`)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # view settings for the page (not data)

    def to_page(self) -> dict[str, Any]:
        rows = [[_json_value(v) for v in row] for row in self.frame.itertuples(index=False, name=None)]
        return {
            "title": self.title,
            "columns": [str(c) for c in self.frame.columns],
            "counts": list(self.counts),
            "filters": list(self.filters),
            "notes": self.notes,
            "rows": rows,
            **self.extra,
        }

    def to_csv(self) -> bytes:
        out = self.frame.copy()
        for column in out.columns:
            if column in self.counts:
                out[column] = [SUPPRESSED_LABEL if pd.isna(v) else str(int(v)) for v in out[column]]
            elif pd.api.types.is_float_dtype(out[column]):
                out[column] = [_csv_float(v) for v in out[column]]
        buffer = io.StringIO()
        out.to_csv(buffer, index=False, lineterminator="\n")
        return buffer.getvalue().encode("utf-8")


def published_counts(values: pd.Series | np.ndarray, suppressed: np.ndarray | pd.Series) -> pd.Series:
    """Counts as published: NA where suppressed."""
    series = pd.Series(np.asarray(values), dtype="Int64")
    return series.mask(pd.Series(np.asarray(suppressed, dtype=bool)))


def primary_only(counts: pd.Series) -> pd.Series:
    """Counts of a view whose cells are not linked by any published total: NA where 1-10."""
    series = pd.Series(counts).astype("Int64").reset_index(drop=True)
    return series.mask(pd.Series(is_small(series.fillna(0).to_numpy())))


def rollup(frame: pd.DataFrame, keys: Sequence[str], rolled: Sequence[str], measures: Sequence[str]) -> pd.DataFrame:
    """Sums of `measures` for every combination of concrete / "all" values of the `rolled` keys."""
    frames = []
    for size in range(len(rolled) + 1):
        for combination in itertools.combinations(rolled, size):
            by = [k for k in keys if k not in combination]
            if by:
                summed = frame.groupby(by, sort=False, dropna=False)[list(measures)].sum().reset_index()
            else:
                summed = frame[list(measures)].sum().to_frame().T
            frames.append(summed.assign(**dict.fromkeys(combination, ALL)))
    if not frames:
        return pd.DataFrame(columns=[*keys, *measures])
    out = pd.concat(frames, ignore_index=True)[[*keys, *measures]]
    for key in keys:
        out[key] = out[key].astype(str)
    return out.astype(dict.fromkeys(measures, "int64"))


def label_order(values: Sequence[str] | pd.Series) -> list[str]:
    """ "all" first, then natural order ("2" before "10", "4-6" before "7+")."""
    unique = {str(v) for v in values}
    rest = sorted(unique - {ALL}, key=natural_key)
    return ([ALL] if ALL in unique else []) + rest


def natural_key(label: str) -> tuple:
    text = str(label)
    digits = ""
    for char in text:
        if not char.isdigit():
            break
        digits += char
    return (0, int(digits), text) if digits else (1, 0, text)


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), FLOAT_DIGITS)
    return str(value)


def _csv_float(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(round(float(value), FLOAT_DIGITS))
