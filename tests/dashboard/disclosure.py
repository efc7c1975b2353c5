"""An attacker with a spreadsheet: what can be worked out from the published numbers by adding and subtracting.

Written independently of the package's suppression code. A table is a frame of labelled cells, `None` where
the page shows "<11" (or shows nothing it would show as 0); combinations absent from the table are 0.
For every relation (a total member of one dimension = the sum of its parts, the other dimensions fixed):
- the total shown and one part hidden: the part is total - the others;
- the total hidden and every part shown: the total is their sum;
- the total shown and several parts hidden: their sum is derivable too.
Any of those derived numbers from 1 to 10 is a disclosure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Disclosure:
    relation: str
    group: tuple
    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.relation} at {self.group}: {self.kind} = {self.value:g}"


def derivable_small_counts(
    frame: pd.DataFrame,
    dims: Sequence[str],
    measure: str,
    relations: Sequence[tuple[str, object, Sequence | None]],
) -> list[Disclosure]:
    """Every relation group of `frame` (see module doc); relations = (dimension, total member, parts or None)."""
    found: list[Disclosure] = []
    values = pd.to_numeric(frame[measure], errors="coerce").astype(float)  # None -> NaN (hidden)
    for dimension, total, parts in relations:
        member = frame[dimension]
        is_total = (member == total).to_numpy()
        is_part = ~is_total if parts is None else member.isin(list(parts)).to_numpy()
        chosen = is_total | is_part
        others = [d for d in dims if d != dimension]
        cells = frame.loc[chosen, others].copy() if others else pd.DataFrame(index=frame.index[chosen])
        value = values[chosen].to_numpy()
        total_row = is_total[chosen]
        cells["_group"] = cells.groupby(others, sort=False, dropna=False).ngroup() if others else 0
        cells["_total_value"] = np.where(total_row, value, np.nan)
        cells["_total_rows"] = total_row
        cells["_hidden_part"] = ~total_row & np.isnan(value)
        cells["_known_part"] = np.where(~total_row & ~np.isnan(value), value, 0.0)
        grouped = cells.groupby("_group").agg(
            total=("_total_value", "max"),
            has_total=("_total_rows", "any"),
            hidden=("_hidden_part", "sum"),
            known=("_known_part", "sum"),
        )
        total_known = ~grouped["has_total"] | grouped["total"].notna()
        total_value = grouped["total"].fillna(0)
        rest = total_value - grouped["known"]
        small_rest = rest.between(1, 10)
        checks = [
            (total_known & (grouped["hidden"] == 1) & small_rest, "the one hidden part", rest),
            (total_known & (grouped["hidden"] > 1) & small_rest, "the sum of the hidden parts", rest),
            (
                ~total_known & (grouped["hidden"] == 0) & grouped["known"].between(1, 10),
                "the hidden total",
                grouped["known"],
            ),
        ]
        keys = cells.drop_duplicates("_group").set_index("_group")[others] if others else None
        for mask, kind, derived in checks:
            for group in grouped.index[mask.to_numpy()]:
                key = tuple(keys.loc[group]) if keys is not None else ()
                found.append(Disclosure(f"{measure} along {dimension}", key, kind, float(derived[group])))
    return found


def small_counts(values: Sequence) -> list:
    """The values from 1 to 10 (counts that must not be shown)."""
    out = []
    for value in values:
        if value is None or value in {"", "<11"} or (isinstance(value, float) and np.isnan(value)):
            continue
        number = float(value)
        if 1 <= number <= 10:
            out.append(value)
    return out
