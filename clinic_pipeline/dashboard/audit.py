"""The linear-algebra audit of a suppression pattern: which hidden cells do the published totals determine?

An attacker who knows every shown cell and every relation (a total = the sum of its parts) can solve the
linear system; a hidden cell is exactly disclosed when its unit vector lies in the row space. Used by the
tests on every lattice of the site (the hypercube step in `suppress_cells` is meant to make this list empty
for every primary cell); too slow to run on each publish of a network-month.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from clinic_pipeline.dashboard.suppression import Relation, _RelationGroups


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
