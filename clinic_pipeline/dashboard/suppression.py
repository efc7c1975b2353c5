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

Limits: exact disclosure is prevented (`exact_disclosures` audits it with linear algebra in the tests);
bounds narrower than 1-10 that non-negativity gives (a hidden cell paired with a hidden 0) are not searched
for. Tables are linked through `forced` / `protected` where they publish the same total; differences between
related but distinct quantities of different views are documented in docs/dashboard.md.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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


def exact_disclosures(
    cells: pd.DataFrame,
    dims: Sequence[str],
    measure: str,
    relations: Sequence[Relation],
    suppressed: np.ndarray,
    max_component: int = 4000,
    targets: np.ndarray | None = None,
) -> list[int]:
    """Rows whose suppressed, non-zero `measure` is determined exactly by the published rows via the relations
    (only rows in `targets` are reported, e.g. the primary cells; default: every suppressed row).

    The attacker's system: one unknown per suppressed row, one equation per relation group (parts - total =
    the published members' balance). An unknown is determined when its unit vector lies in the row space.
    Unknowns that occur in a single equation are peeled off first (such an unknown absorbs its equation: it is
    determined only when every other unknown of that equation is); the remaining core is solved per connected
    component with an SVD. A core component above `max_component` unknowns raises rather than guess.
    """
    values = cells[measure].to_numpy(dtype="float64")
    unknown_rows = np.flatnonzero(np.asarray(suppressed, dtype=bool))
    equations = _equations(cells, dims, measure, relations, unknown_rows)
    if not equations:
        return []
    with _single_threaded_blas():
        determined = _determined_unknowns(equations, unknown_rows.size, max_component)
    wanted = np.ones(len(cells), dtype=bool) if targets is None else np.asarray(targets, dtype=bool)
    rows = unknown_rows[np.flatnonzero(determined)]
    return sorted(int(r) for r in rows if values[r] != 0 and wanted[r])


def _equations(
    cells: pd.DataFrame, dims: Sequence[str], measure: str, relations: Sequence[Relation], unknown_rows: np.ndarray
) -> list[dict[int, float]]:
    """One {unknown: coefficient} per relation group that has an unknown member."""
    unknown_index = np.full(len(cells), -1, dtype=np.int64)
    unknown_index[unknown_rows] = np.arange(unknown_rows.size)
    equations: list[dict[int, float]] = []
    for relation in relations:
        if measure not in relation.measures:
            continue
        group = _RelationGroups.build(cells, dims, relation)
        if group is None:
            continue
        unknown = unknown_index[group.rows]
        keep = unknown >= 0
        order = np.argsort(group.group[keep], kind="stable")
        ids, coefficients = unknown[keep][order], np.where(group.is_total[keep], -1.0, 1.0)[order]
        bounds = np.flatnonzero(np.diff(group.group[keep][order])) + 1
        for chunk_ids, chunk_coefficients in zip(np.split(ids, bounds), np.split(coefficients, bounds), strict=True):
            if chunk_ids.size:
                equations.append(dict(zip(chunk_ids.tolist(), chunk_coefficients.tolist(), strict=True)))
    return equations


def _determined_unknowns(equations: list[dict[int, float]], unknowns: int, max_component: int) -> np.ndarray:
    occurs: list[list[int]] = [[] for _ in range(unknowns)]
    for number, equation in enumerate(equations):
        for unknown in equation:
            occurs[unknown].append(number)
    active = np.ones(len(equations), dtype=bool)
    degree = np.array([len(o) for o in occurs])
    determined = np.zeros(unknowns, dtype=bool)
    peeled: list[tuple[int, list[int]]] = []  # (unknown, the other unknowns of the equation it absorbed)
    queue = [u for u in range(unknowns) if degree[u] == 1]
    while queue:
        unknown = queue.pop()
        if degree[unknown] != 1:
            continue
        number = next(e for e in occurs[unknown] if active[e])
        active[number] = False
        others = [u for u in equations[number] if u != unknown]
        peeled.append((unknown, others))
        for member in equations[number]:
            degree[member] -= 1
            if degree[member] == 1:
                queue.append(member)
    core = [e for e in range(len(equations)) if active[e]]
    determined |= _core_determined(equations, core, unknowns, max_component)
    for unknown, others in reversed(peeled):
        determined[unknown] = all(determined[o] for o in others)
    return determined


def _core_determined(equations: list[dict[int, float]], core: list[int], unknowns: int, limit: int) -> np.ndarray:
    """Determined unknowns of the core system, per connected component (dense SVD)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    determined = np.zeros(unknowns, dtype=bool)
    if not core:
        return determined
    rows, cols, data = [], [], []
    for position, number in enumerate(core):
        for unknown, coefficient in equations[number].items():
            rows.append(position)
            cols.append(unknown)
            data.append(coefficient)
    system = coo_matrix((data, (rows, cols)), shape=(len(core), unknowns)).tocsc()
    size = len(core) + unknowns
    graph = coo_matrix((np.ones(len(rows)), (rows, np.asarray(cols) + len(core))), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    equation_labels, unknown_labels = labels[: len(core)], labels[len(core) :]
    used = np.zeros(unknowns, dtype=bool)
    used[np.asarray(cols)] = True
    for label in np.unique(unknown_labels[used]):
        members = np.flatnonzero((unknown_labels == label) & used)
        block = system[np.flatnonzero(equation_labels == label)][:, members]
        free = _free_dense(block.toarray()) if members.size <= limit else _free_iterative(block)
        determined[members[~free]] = True
    return determined


def _free_dense(block: np.ndarray) -> np.ndarray:
    """Unknowns not fixed by the block: those where some null-space vector is non-zero (exact SVD)."""
    _, singular, vt = np.linalg.svd(block, full_matrices=True)
    rank = int((singular > 1e-9 * max(1.0, float(singular.max(initial=0.0)))).sum())
    null = vt[rank:]
    return np.abs(null).max(axis=0) > 1e-9 if null.shape[0] else np.zeros(block.shape[1], dtype=bool)


def _free_iterative(block: Any, probes: int = 3) -> np.ndarray:
    """The same for a large sparse block: project random vectors on the null space (LSQR) and look for zeros.

    An unknown fixed by the system has a zero null-space coordinate for every probe; a free one is non-zero
    with probability 1. The gap between the two is many orders of magnitude; coordinates in between raise.
    """
    from scipy.sparse.linalg import lsqr

    rng = np.random.default_rng(20240611)
    transposed = block.T.tocsr()
    largest = np.zeros(block.shape[1])
    for _ in range(probes):
        probe = rng.standard_normal(block.shape[1])
        solution = lsqr(transposed, probe, atol=1e-14, btol=1e-14, conlim=1e12, iter_lim=20 * block.shape[1])[0]
        largest = np.maximum(largest, np.abs(probe - transposed @ solution))
    unclear = (largest > 1e-7) & (largest < 1e-3)
    if unclear.any():
        raise ValueError(f"{int(unclear.sum())} unknowns could not be classified (null-space projection unclear)")
    return largest >= 1e-3


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """OpenBLAS on one thread for the audit's many small vector products: on a busy machine its worker
    threads spin for each call (measured: 27 s instead of 4 s for one lattice). No-op without OpenBLAS."""
    settings = []
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            libraries = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        libraries = []
    for library in libraries:
        try:
            handle = ctypes.CDLL(library)
        except OSError:
            continue
        for suffix in ("", "64_"):
            setter = getattr(handle, f"scipy_openblas_set_num_threads{suffix}", None)
            getter = getattr(handle, f"scipy_openblas_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                settings.append((setter, getter()))
                setter(1)
    try:
        yield
    finally:
        for setter, threads in settings:
            setter(threads)
