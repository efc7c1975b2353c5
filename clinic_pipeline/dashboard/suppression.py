"""Small-cell suppression for everything the dashboard publishes: no count from 1 to 10 shown or derivable.

Every published table is a *lattice*: one row per combination of filter values, each filter dimension having
a total member ("all" / "any") that is the sum of its other members. A browser can only show what Python
pre-computed here, so every filter combination the page offers is a row of some lattice, suppressed here.

Method (CMS cell-size policy; `docs/dashboard.md`):
1. **Primary**: a row is suppressed when any of its counts is 1-10 (0 is shown), when it is `forced` (its
   count is suppressed in another published table), or when a published denominator minus the count is 1-10
   (`Complement`: "patients without the event" is a count too).
2. **Complementary**, over every additive `Relation` (total = sum of parts, along one dimension, with the
   other dimensions fixed), repeated until nothing changes:
   - a relation must not have exactly one suppressed member with a non-zero value (it would be the total
     minus the others, or the sum of the parts);
   - when its total is shown, the suppressed parts must add up to 0 or to at least 11 (their sum is
     derivable: it must not be a small count either).
   A violation suppresses the part with the smallest non-zero count that is neither suppressed nor
   `protected` (protected rows are published by another table, whose suppression decides them).
3. **Hypercube certificates** (`hypercube.py`): every primary cell gets a box of suppressed cells such that
   +t/-t at its corners leaves every total unchanged, so no chain of relations can pin it down either;
   then step 2 runs again. Absent (zero) corners the page would show as 0 are added, suppressed.
4. A row's counts share one state (`suppress_in_turn` gives each count its own when one small count must
   not hide the others of its row): a rate is shown only when its numerator and denominator are.

Limits: exact disclosure is prevented (`audit.exact_disclosures` checks it with linear algebra in the tests);
bounds narrower than 1-10 that non-negativity gives (a hidden cell paired with a hidden 0) are not searched
for. Tables are linked through `forced` / `protected` where they publish the same total; differences between
related but distinct quantities of different views are documented in docs/dashboard.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clinic_pipeline.dashboard.hypercube import certify_primaries

log = logging.getLogger("clinic_pipeline.dashboard")

THRESHOLD = 11  # the smallest count shown besides 0
SUPPRESSED_LABEL = "<11"
ALL = "all"


def is_small(values: Iterable[float] | np.ndarray | pd.Series) -> np.ndarray:
    """True where a count is 1-10 (the counts that must not be shown)."""
    array = np.asarray(values, dtype="float64")
    return (array >= 1) & (array < THRESHOLD)


@dataclass(frozen=True)
class Relation:
    """`total` member of `dimension` = sum of its `parts` (every other member when None), for `measures`."""

    dimension: str
    measures: tuple[str, ...]
    total: object = ALL
    parts: tuple[object, ...] | None = None


@dataclass(frozen=True)
class Complement:
    """`whole - part` is a count too (whole: the denominator's value; shown: whether it is published)."""

    part: str
    whole: str
    whole_shown: str


@dataclass
class Suppression:
    """Per-row result over `cells` (the input plus any absent corner the hypercube step had to hide, added
    as zero counts): `suppressed` (primary or complementary) and why."""

    cells: pd.DataFrame
    suppressed: np.ndarray
    primary: np.ndarray
    passes: int
    unresolved: int  # relation groups that could not be protected (0 unless every candidate was protected)
    uncertified: int = 0  # primaries without a hypercube certificate (0 unless protected cells were in the way)

    @property
    def complementary(self) -> np.ndarray:
        return self.suppressed & ~self.primary


def suppress_cells(
    cells: pd.DataFrame,
    dims: Sequence[str],
    measures: Sequence[str],
    relations: Sequence[Relation] = (),
    complements: Sequence[Complement] = (),
    forced: np.ndarray | pd.Series | None = None,
    protected: np.ndarray | pd.Series | None = None,
    max_passes: int = 500,
    unknown_absent: pd.DataFrame | None = None,
) -> Suppression:
    """Primary and complementary suppression of a lattice (see module doc).

    `cells`: one row per combination of `dims` (rows absent = every count 0; a total row must exist when
    one of its parts is non-zero), with the count columns `measures`. The result may hold more rows than
    `cells`: zero cells that a hypercube had to hide (their other columns are missing values).
    `unknown_absent`: combinations of some dimensions where the page does not show an absent cell as 0
    (a hypercube corner there need not be added).
    """
    cells = cells.reset_index(drop=True)
    n = len(cells)
    values = {m: cells[m].to_numpy(dtype="float64") for m in measures}
    primary = np.zeros(n, dtype=bool)
    for m in measures:
        primary |= is_small(values[m])
    if forced is not None:
        primary |= np.asarray(forced, dtype=bool)
    for c in complements:
        shown = cells[c.whole_shown].to_numpy(dtype=bool)
        rest = cells[c.whole].to_numpy(dtype="float64") - cells[c.part].to_numpy(dtype="float64")
        primary |= shown & is_small(rest) & (cells[c.part].to_numpy(dtype="float64") > 0)
    locked = np.zeros(n, dtype=bool) if protected is None else np.asarray(protected, dtype=bool)
    suppressed, passes, unresolved = _complementary_passes(cells, dims, relations, values, primary, locked, max_passes)
    uncertified = 0
    if relations and n:
        largest = np.max(np.vstack([values[m] for m in measures]), axis=0)
        targets = primary & (largest > 0)
        boxes = certify_primaries(cells, dims, relations, suppressed, targets, locked, largest, unknown_absent)
        uncertified = boxes.uncertified
        if len(boxes.added):
            added = boxes.added.assign(**{m: 0 for m in measures})
            cells = pd.concat([cells, added], ignore_index=True)
            extra = len(added)
            values = {m: cells[m].to_numpy(dtype="float64") for m in measures}
            primary = np.concatenate([primary, np.zeros(extra, dtype=bool)])
            locked = np.concatenate([locked, np.zeros(extra, dtype=bool)])
            boxed = np.concatenate([boxes.suppressed, np.ones(extra, dtype=bool)])
        else:
            boxed = boxes.suppressed
        if boxed.size != suppressed.size or (boxed != suppressed).any():
            suppressed, more, unresolved = _complementary_passes(
                cells, dims, relations, values, boxed, locked, max_passes
            )
            passes += more
    if unresolved or uncertified:
        log.warning(
            "small-cell suppression: %d relation groups unprotected, %d primaries without a certificate",
            unresolved,
            uncertified,
        )
    return Suppression(cells, suppressed, primary, passes, unresolved, uncertified)


def _complementary_passes(
    cells: pd.DataFrame,
    dims: Sequence[str],
    relations: Sequence[Relation],
    values: dict[str, np.ndarray],
    start: np.ndarray,
    locked: np.ndarray,
    max_passes: int,
) -> tuple[np.ndarray, int, int]:
    suppressed = start.copy()
    groups = [_RelationGroups.build(cells, dims, r) for r in relations]
    groups = [g for g in groups if g is not None]
    passes, unresolved = 0, 0
    while passes < max_passes:
        passes += 1
        changed = False
        unresolved = 0
        for group in groups:
            for measure in group.relation.measures:
                added, stuck = group.protect(values[measure], suppressed, locked)
                if added.size:
                    suppressed[added] = True
                    changed = True
                unresolved += stuck
        if not changed:
            break
    return suppressed, passes, unresolved


def suppress_in_turn(
    cells: pd.DataFrame,
    dims: Sequence[str],
    steps: Sequence[tuple[str, str | None]],
    relation_dims: Sequence[str],
    shown_columns: dict[str, str] | None = None,
    forced: np.ndarray | pd.Series | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Each count its own state, suppressed in turn: `steps` = (count, whole) where `whole - count` is a count
    too (None: no whole). A whole suppressed in an earlier step is hidden, so its difference cannot be
    derived; an external whole says whether it is shown through `shown_columns[whole]`. Use it when one small
    count must not hide the others of its row (breaches and the breaches staff did not record).

    Returns the cells (with the zero cells a hypercube added, hidden for every count) and count -> state.
    """
    states: dict[str, np.ndarray] = {}
    shown_columns = shown_columns or {}
    cells = cells.reset_index(drop=True)
    forced_rows = None if forced is None else np.asarray(forced, dtype=bool)
    for count, whole in steps:
        frame = cells
        complements = []
        if whole is not None:
            if whole in states:
                frame = cells.assign(_whole_shown=~states[whole])
                complements = [Complement(count, whole, "_whole_shown")]
            else:
                complements = [Complement(count, whole, shown_columns[whole])]
        relations = [Relation(d, (count,)) for d in relation_dims]
        result = suppress_cells(frame, dims, [count], relations, complements, forced=forced_rows)
        extra = len(result.cells) - len(cells)
        if extra:
            added = result.cells.iloc[len(cells) :][list(dims)]
            cells = pd.concat([cells, added], ignore_index=True)
            for measure, _ in steps:
                if measure in cells:
                    cells[measure] = cells[measure].fillna(0)
            states = {k: np.concatenate([v, np.ones(extra, dtype=bool)]) for k, v in states.items()}
            if forced_rows is not None:
                forced_rows = np.concatenate([forced_rows, np.ones(extra, dtype=bool)])
        states[count] = result.suppressed
    return cells, states


@dataclass
class _RelationGroups:
    """The rows of one relation, grouped by the values of the other dimensions."""

    relation: Relation
    rows: np.ndarray  # row numbers of the members (totals and parts)
    group: np.ndarray  # group number per member
    is_total: np.ndarray
    groups: int

    @classmethod
    def build(cls, cells: pd.DataFrame, dims: Sequence[str], relation: Relation) -> _RelationGroups | None:
        member = cells[relation.dimension].to_numpy()
        is_total = member == relation.total
        is_part = ~is_total if relation.parts is None else np.isin(member, list(relation.parts))
        rows = np.flatnonzero(is_total | is_part)
        if rows.size == 0:
            return None
        key = np.zeros(rows.size, dtype=np.int64)
        for dim in dims:
            if dim == relation.dimension:
                continue
            codes, uniques = pd.factorize(cells[dim].to_numpy()[rows])
            key = key * (len(uniques) + 1) + codes
        group = pd.factorize(key)[0].astype(np.int64)
        return cls(relation, rows, group, is_total[rows], int(group.max()) + 1)

    def protect(self, values: np.ndarray, suppressed: np.ndarray, locked: np.ndarray) -> tuple[np.ndarray, int]:
        """Rows to suppress now (one per violating group) and the number of groups left unprotected."""
        value = values[self.rows]
        sup = suppressed[self.rows]
        nonzero_sup = sup & (value != 0)
        lone = np.bincount(self.group, weights=nonzero_sup, minlength=self.groups) == 1
        part_sum = np.bincount(self.group, weights=np.where(sup & ~self.is_total, value, 0.0), minlength=self.groups)
        total_shown = np.bincount(self.group, weights=self.is_total & ~sup, minlength=self.groups) > 0
        violating = lone | (total_shown & is_small(part_sum))
        if not violating.any():
            return np.empty(0, dtype=np.int64), 0
        in_violation = violating[self.group]
        eligible = in_violation & ~sup & ~self.is_total & (value > 0) & ~locked[self.rows]
        chosen = _first_per_group(self.group[eligible], value[eligible], self.rows[eligible])
        fixed = np.zeros(self.groups, dtype=bool)
        fixed[self.group[np.isin(self.rows, chosen)]] = True
        # A lone suppressed part whose group has no other candidate: the total itself can hide it.
        totals = in_violation & self.is_total & ~sup & (value > 0) & ~locked[self.rows] & ~fixed[self.group]
        chosen_totals = self.rows[totals]
        fixed[self.group[totals]] = True
        stuck = int((violating & ~fixed).sum())
        return np.concatenate([chosen, chosen_totals]), stuck


def _first_per_group(group: np.ndarray, value: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The row with the smallest value in each group (ties: the earliest row, for determinism)."""
    if group.size == 0:
        return np.empty(0, dtype=np.int64)
    order = np.lexsort((rows, value, group))
    first = np.unique(group[order], return_index=True)[1]
    return rows[order][first]


def shown(values: pd.Series | np.ndarray, suppressed: np.ndarray) -> list[int | None]:
    """Counts as published: None where suppressed (rendered "<11")."""
    array = np.asarray(values)
    return [None if s else int(v) for v, s in zip(array, suppressed, strict=True)]
