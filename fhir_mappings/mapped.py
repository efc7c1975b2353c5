"""What a builder returns: resources that passed every row check, and the rows that did not.

Builders check the varying fields of a whole frame at once (vectorised) before they build anything; a row that
fails a check becomes a rejection naming the source table, the row key, the batch and the rule, and no resource
is built for it. Each resource also carries a *shape*: the builder's name for which optional parts it has.
Resources of one shape differ only in values that the row checks already proved valid, so validating one
resource per shape with the full validator proves the structure of all of them (see `fhir_mappings.gate`).

Most builders return dicts (`resources`); the export gate serializes them. The bulk of a network, the vital
signs, is built straight as NDJSON lines from a per-shape byte template (`fhir_mappings.template`): then
`resources` is empty and `examples` holds, per shape, the dict the template was made from.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

REJECTION_COLUMNS = ["resource_type", "source_table", "row_key", "batch_id", "rule", "reason"]


PER_RESOURCE = ("ids", "lines", "resources", "shapes", "patient_ids", "batch_ids", "source_times")


@dataclass
class Mapped:
    resource_type: str
    resources: list[dict[str, Any]] = field(default_factory=list)
    shapes: list[Hashable] = field(default_factory=list)
    patient_ids: list[str | None] = field(default_factory=list)  # owner, for per-patient delivery bundles
    batch_ids: list[str] = field(default_factory=list)  # source batch, for Provenance
    source_times: list[str] = field(default_factory=list)  # when the source recorded it, for Provenance
    rejections: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REJECTION_COLUMNS))
    ids: list[str] = field(default_factory=list)  # filled by template builders and by the gate
    lines: list[bytes] = field(default_factory=list)  # the NDJSON line of each resource (idem)
    examples: dict[Hashable, dict[str, Any]] = field(default_factory=dict)  # shape -> template source

    def extend(self, other: Mapped) -> None:
        assert other.resource_type == self.resource_type
        for name in PER_RESOURCE:
            getattr(self, name).extend(getattr(other, name))
        self.examples.update(other.examples)
        self.rejections = concat_rejections([self.rejections, other.rejections])

    def add(self, resource: dict[str, Any], shape: Hashable, patient: str | None, batch: str, when: str) -> None:
        """One dict-built resource, with what delivery and Provenance need to know of it."""
        self.resources.append(resource)
        self._describe(shape, patient, batch, when)

    def add_line(self, line: bytes, rid: str, shape: Hashable, patient: str | None, batch: str, when: str) -> None:
        """One template-built resource (its NDJSON line and id)."""
        self.lines.append(line)
        self.ids.append(rid)
        self._describe(shape, patient, batch, when)

    def _describe(self, shape: Hashable, patient: str | None, batch: str, when: str) -> None:
        self.shapes.append(shape)
        self.patient_ids.append(patient)
        self.batch_ids.append(batch)
        self.source_times.append(when)

    def keep(self, keep: list[bool]) -> None:
        """Drop the resources whose flag is False from every per-resource list."""
        for name in PER_RESOURCE:
            values = getattr(self, name)
            if values:
                setattr(self, name, [v for v, k in zip(values, keep, strict=True) if k])

    def all_resources(self) -> list[dict[str, Any]]:
        """Every resource as a dict (parses template-built lines: for tests and rare paths only)."""
        import orjson

        return self.resources if self.resources or not self.lines else [orjson.loads(line) for line in self.lines]

    def __len__(self) -> int:
        return max(len(self.resources), len(self.lines))


def concat_rejections(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=REJECTION_COLUMNS)
    return pd.concat(frames, ignore_index=True)[REJECTION_COLUMNS]


@dataclass(frozen=True)
class RowCheck:
    """A rule over whole columns: `failing` is True where the row breaks it."""

    rule: str
    reason: str  # names fields and rules, never values that could identify a person
    failing: pd.Series


def missing(frame: pd.DataFrame, column: str) -> RowCheck:
    values = frame[column]
    bad = values.isna()
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        text = values.astype("string")
        bad |= text.str.strip().fillna("").eq("") | text.ne(text.str.strip()).fillna(False)
    return RowCheck("required", f"{column} is missing, empty or padded with spaces", bad)


def not_finite(frame: pd.DataFrame, column: str) -> RowCheck:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return RowCheck("decimal", f"{column} is not a finite number", pd.Series(~np.isfinite(values), frame.index))


def not_in(frame: pd.DataFrame, column: str, allowed: Any, rule: str = "value_set") -> RowCheck:
    return RowCheck(rule, f"{column} is not in the value set of its FHIR element", ~frame[column].isin(list(allowed)))


class KeySet(frozenset):
    """Keys of exported parents, with the array form pandas' `isin` wants made once (not once per chunk)."""

    @functools.cached_property
    def array(self) -> pd.Index:
        return pd.Index(sorted(self), dtype="string")


def unresolved(frame: pd.DataFrame, column: str, known: Any, target: str) -> RowCheck:
    values = known.array if isinstance(known, KeySet) else known
    return RowCheck(
        "reference_unresolved",
        f"{column} refers to a {target} that is not in the export (held in quarantine or never received)",
        ~frame[column].isin(values),
    )


def split_rows(
    frame: pd.DataFrame,
    checks: list[RowCheck],
    *,
    resource_type: str,
    source_table: str,
    key: pd.Series | Callable[[pd.DataFrame], pd.Series],
    batch: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows that pass every check, one rejection per failing row naming its first broken rule).

    `key` may be a function of the failing rows, for keys that are costly to format for every row.
    """
    if frame.empty:
        return frame, pd.DataFrame(columns=REJECTION_COLUMNS)
    rule = pd.Series(pd.NA, index=frame.index, dtype="string")
    reason = pd.Series(pd.NA, index=frame.index, dtype="string")
    for check in reversed(checks):  # the first check listed wins: reverse so it is written last
        hit = check.failing.fillna(True).astype(bool)
        rule = rule.mask(hit, check.rule)
        reason = reason.mask(hit, check.reason)
    bad = rule.notna()
    rejections = pd.DataFrame(
        {
            "resource_type": resource_type,
            "source_table": source_table,
            "row_key": (key(frame[bad]) if callable(key) else key[bad]).astype("string"),
            "batch_id": (batch[bad].astype("string") if batch is not None else pd.Series("", index=frame.index)[bad]),
            "rule": rule[bad],
            "reason": reason[bad],
        }
    )
    return frame[~bad], rejections.reset_index(drop=True)


def utc_text(values: pd.Series) -> list[str]:
    """FHIR dateTime/instant text of tz-aware timestamps in UTC, to the second (a fixed format: always valid).

    Missing times give "NaT"; builders only use the text where the time is present.
    """
    seconds = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[s]")
    return np.datetime_as_string(seconds, unit="s", timezone="UTC").tolist()


def source_batches(frame: pd.DataFrame, default: str = "ehr") -> list[str]:
    """The batch that staged each row (lakes staged before EHR rows kept it: the source as a whole, then)."""
    if "batch_id" not in frame:
        return [default] * len(frame)
    return frame["batch_id"].astype("string").fillna(default).tolist()
