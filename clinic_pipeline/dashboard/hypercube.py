"""Hypercube certificates: every primary-suppressed count gets a box of suppressed cells around it.

Suppressing so that no relation has a single hidden cell stops the one-step subtraction, but a chain of
relations can still pin a hidden cell down (the linear audit in `audit.exact_disclosures` finds such
cells on real lattices). The hypercube method (Repsilber; tau-ARGUS "GHMITER") closes that gap: for each
primary cell it suppresses the corners of a box, one small "balanced" set of members per dimension, such
that adding +t / -t at the corners keeps every published total unchanged. The published numbers then fit
more than one value of the primary cell, so no combination of totals can determine it.

Per dimension a balanced set is built from that dimension's relations (sibling pairs {x: +1, y: -1}, or
{x: +1, total: +1}, and for hierarchies and partitions the members needed to keep every relation of the
dimension balanced). Dimension by dimension, the set whose new corners cost least is chosen, diagonal
corners included (a box through a coarse total would hide large counts there): a hidden cell is free, a
zero cell costs 11, a shown count its value plus one, a protected shown cell cannot be used. Absent corners
the reader would see as 0 are returned so that the caller adds them as suppressed zero cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Hiding a zero cell shows "<11" where nothing happened, but loses less than hiding a shown count (>= 11):
# its cost sits between a suppressed cell (free) and any shown count (its value + 1).
ABSENT_COST = 11.0
MAX_TEMPLATE_MEMBERS = 4
MAX_TEMPLATES = 400
TOP = 4  # candidate sets per dimension priced over the whole box
DENSE_LIMIT = 20_000_000  # possible cells up to which prices live in one dense array
CHUNK = 1000


@dataclass
class Certificates:
    suppressed: np.ndarray  # the state after the boxes (same rows as the input)
    added: pd.DataFrame  # dimension values of absent corners, to add as suppressed zero cells
    uncertified: int  # primaries left without a box (every box would touch a protected shown cell)


def certify_primaries(
    cells: pd.DataFrame,
    dims: Sequence[str],
    relations: Sequence,
    suppressed: np.ndarray,
    targets: np.ndarray,
    locked: np.ndarray,
    cost_values: np.ndarray,
    unknown_absent: pd.DataFrame | None = None,
) -> Certificates:
    """Suppress a box around every `targets` row (see module doc).

    `unknown_absent`: combinations of some of the dimensions (its columns) where an absent cell is not shown
    as 0 (e.g. a selection whose denominator is hidden): such corners are free and need not be added.
    """
    suppressed = suppressed.copy()
    rows = np.flatnonzero(targets)
    if rows.size == 0 or not dims:
        return Certificates(suppressed, pd.DataFrame(columns=list(dims)), 0)
    coding = _Coding.build(cells, dims, relations)
    shown_cost = np.where(cost_values == 0, ABSENT_COST, cost_values + 1.0)
    prices = _Prices(coding, np.where(suppressed, 0.0, np.where(locked, np.inf, shown_cost)), unknown_absent)
    templates: dict[int, dict[int, list]] = {}
    levels: dict[int, dict[int, int]] = {}
    for d in range(len(dims)):
        relations_d = [r for r in coding.relations if r[0] == d]
        templates[d], levels[d] = {}, {}
        for m in range(coding.sizes[d]):
            templates[d][m], levels[d][m] = _templates(m, relations_d)
    uncertified = 0
    # A box certifies every cell at its corners (the same +t/-t pattern changes each of them), so a primary
    # already at a corner of an earlier box needs no box of its own.
    certified = np.zeros(len(cells), dtype=bool)
    for start in range(0, rows.size, CHUNK):
        chunk = rows[start : start + CHUNK]
        chunk = chunk[~certified[chunk]]
        if chunk.size == 0:
            continue
        base = coding.keys[chunk]
        box = base[:, None]
        feasible = np.ones(chunk.size, dtype=bool)
        for d in range(len(dims)):
            box, ok = _extend_box(d, base, box, coding, templates[d], levels[d], prices)
            feasible &= ok
        uncertified += int((~feasible).sum())
        found, positions = coding.lookup(box[feasible].ravel())
        suppressed[positions[found]] = True
        certified[positions[found]] = True
        prices.hide(positions[found], box[feasible].ravel()[~found])
    return Certificates(suppressed, coding.decode(prices.added_keys()), uncertified)


class _Prices:
    """What hiding a cell costs: 0 if hidden already (or an absent cell the reader cannot see), 11 for an
    absent (zero) cell, the count + 1 for a shown cell, infinite for a protected shown cell.

    Held as one dense array over the whole key space when it fits (a lattice of a few million possible
    cells: one gather per lookup), else looked up in the sorted keys."""

    def __init__(self, coding: _Coding, cost: np.ndarray, unknown_absent: pd.DataFrame | None) -> None:
        self.coding = coding
        self.cost = cost
        self.added_sorted = np.empty(0, dtype=np.int64)
        self.context: tuple[list[int], np.ndarray] | None = None
        if unknown_absent is not None and len(unknown_absent):
            context_dims = [coding.dims.index(c) for c in unknown_absent.columns]
            keys = np.zeros(len(unknown_absent), dtype=np.int64)
            valid = np.ones(len(unknown_absent), dtype=bool)
            for d, column in zip(context_dims, unknown_absent.columns, strict=True):
                lookup = {m: i for i, m in enumerate(coding.uniques[d])}
                codes = np.array([lookup.get(v, -1) for v in unknown_absent[column]], dtype=np.int64)
                valid &= codes >= 0
                keys += np.maximum(codes, 0) * coding.strides[d]
            self.context = (context_dims, np.unique(keys[valid]))
        self.dense: np.ndarray | None = None
        if coding.space <= DENSE_LIMIT:
            self.dense = np.full(coding.space, ABSENT_COST, dtype=np.float64)
            if self.context is not None:
                every = np.arange(coding.space, dtype=np.int64)
                self.dense[self._invisible(every)] = 0.0
            self.dense[coding.keys] = cost

    def _invisible(self, keys: np.ndarray) -> np.ndarray:
        """Keys whose cell the page would not show as 0 when absent (its context is hidden)."""
        if self.context is None:
            return np.zeros(keys.shape, dtype=bool)
        context_dims, hidden = self.context
        context = np.zeros(keys.shape, dtype=np.int64)
        for d in context_dims:
            context += self.coding.code_of(d, keys) * self.coding.strides[d]
        return np.isin(context, hidden)

    def __call__(self, keys: np.ndarray) -> np.ndarray:
        if self.dense is not None:
            return self.dense[keys]
        found, positions = self.coding.lookup(keys)
        price = np.where(found, self.cost[positions], ABSENT_COST)
        absent = ~found
        if absent.any():
            if self.added_sorted.size:
                price[absent & np.isin(keys, self.added_sorted)] = 0.0
            price[absent & self._invisible(keys)] = 0.0
        return price

    def hide(self, positions: np.ndarray, absent_keys: np.ndarray) -> None:
        self.cost[positions] = 0.0
        if self.dense is not None:
            self.dense[self.coding.keys[positions]] = 0.0
        if absent_keys.size:
            new = np.unique(absent_keys[self(absent_keys) > 0])  # neither added already nor invisible
            if new.size:
                self.added_sorted = np.union1d(self.added_sorted, new)
                if self.dense is not None:
                    self.dense[new] = 0.0

    def added_keys(self) -> np.ndarray:
        return self.added_sorted


@dataclass
class _Coding:
    """Integer codes per dimension, one int64 key per cell (mixed radix) and the relations in codes."""

    dims: list[str]
    uniques: list[np.ndarray]
    sizes: list[int]
    strides: np.ndarray
    keys: np.ndarray
    order: np.ndarray
    sorted_keys: np.ndarray
    relations: list[tuple[int, int, tuple[int, ...]]]  # (dimension, total code, part codes)
    dense_rows: np.ndarray | None = None  # key -> row (-1: absent), built on first lookup when it fits

    @property
    def space(self) -> int:
        return int(self.strides[0] * self.sizes[0]) if self.sizes else 1

    @classmethod
    def build(cls, cells: pd.DataFrame, dims: Sequence[str], relations: Sequence) -> _Coding:
        uniques, codes = [], []
        for dim in dims:
            values = cells[dim].to_numpy()
            members = list(pd.unique(values))
            known = set(members)
            for relation in relations:
                if relation.dimension == dim:
                    for extra in [relation.total, *(relation.parts or ())]:
                        if extra not in known:
                            known.add(extra)
                            members.append(extra)
            lookup = {m: i for i, m in enumerate(members)}
            uniques.append(np.asarray(members, dtype=object))
            codes.append(np.fromiter((lookup[v] for v in values), dtype=np.int64, count=len(values)))
        sizes = [max(len(u), 1) for u in uniques]
        strides = np.ones(len(dims), dtype=np.int64)
        for i in range(len(dims) - 2, -1, -1):
            strides[i] = strides[i + 1] * sizes[i + 1]
        keys = np.zeros(len(cells), dtype=np.int64)
        for i, code in enumerate(codes):
            keys += code * strides[i]
        coded = []
        for relation in relations:
            d = list(dims).index(relation.dimension)
            lookup = {m: i for i, m in enumerate(uniques[d])}
            total = lookup[relation.total]
            if relation.parts is None:
                parts = tuple(i for i in range(sizes[d]) if i != total)
            else:
                parts = tuple(lookup[p] for p in relation.parts)
            coded.append((d, total, parts))
        order = np.argsort(keys, kind="stable")
        return cls(list(dims), uniques, sizes, strides, keys, order, keys[order], coded)

    def code_of(self, d: int, keys: np.ndarray) -> np.ndarray:
        return (keys // self.strides[d]) % self.sizes[d]

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, row) per key."""
        if self.space <= DENSE_LIMIT:
            if self.dense_rows is None:
                self.dense_rows = np.full(self.space, -1, dtype=np.int64)
                self.dense_rows[self.keys] = np.arange(self.keys.size)
            rows = self.dense_rows[keys]
            return rows >= 0, np.maximum(rows, 0)
        at = np.searchsorted(self.sorted_keys, keys)
        at_clipped = np.minimum(at, len(self.sorted_keys) - 1)
        found = (at < len(self.sorted_keys)) & (self.sorted_keys[at_clipped] == keys)
        return found, self.order[at_clipped]

    def decode(self, keys: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({dim: self.uniques[d][self.code_of(d, keys)] for d, dim in enumerate(self.dims)})


def _extend_box(
    d: int,
    base: np.ndarray,
    box: np.ndarray,
    coding: _Coding,
    templates: dict[int, list[list[tuple[int, int]]]],
    levels: dict[int, int],
    prices: _Prices,
) -> tuple[np.ndarray, np.ndarray]:
    """Grow each row's box along dimension d with the balanced set whose new corners cost least.

    Candidates: the TOP sets at the member's own level (siblings; sets through a coarser total only when there
    are none) cheapest by their line neighbours, each priced over every corner it adds to the box so far
    (diagonal corners included). Returns the new boxes (padded with
    repeated keys to one width) and whether a set without a protected shown cell was found."""
    member = coding.code_of(d, base)
    width = max((len(t) for options in templates.values() for t in options), default=1)
    grown = np.repeat(box, width, axis=1)  # rows whose member needs no growth keep their box (repeated)
    feasible = np.ones(base.size, dtype=bool)
    stride = coding.strides[d]
    for m in np.unique(member):
        rows = np.flatnonzero(member == m)
        options = templates[int(m)]
        if not options:
            feasible[rows] = False  # no balanced set small enough: left to the audit
            continue
        if len(options) == 1 and len(options[0]) == 1:
            continue  # a dimension without relations: the box stays flat along it
        offsets = np.zeros((len(options), width), dtype=np.int64)
        for j, template in enumerate(options):
            for k, (code, _sign) in enumerate(template):
                offsets[j, k] = (code - m) * stride
        # Sets at the member's own level (siblings) only, while there are any: a set through a coarser total
        # makes the corners of the later dimensions coarse too, hiding large counts (measured: ~30 % fewer
        # counts shown on a network-month than with siblings only).
        usable = levels[int(m)] or len(options)
        if usable > TOP:
            line = prices(base[rows, None, None] + offsets[None, :usable, 1:]).sum(axis=2)
            candidates = np.argpartition(line, TOP - 1, axis=1)[:, :TOP]
        else:
            candidates = np.broadcast_to(np.arange(usable), (rows.size, usable))
        chosen_offsets = offsets[candidates]  # (rows, candidates, width)
        corners = box[rows][:, None, :, None] + chosen_offsets[:, :, None, 1:]  # the new corners only
        total = prices(corners.reshape(-1)).reshape(rows.size, candidates.shape[1], -1).sum(axis=2)
        best = np.argmin(total, axis=1)
        feasible[rows] = np.isfinite(total[np.arange(rows.size), best])
        picked = chosen_offsets[np.arange(rows.size), best]  # (rows, width)
        grown[rows] = (box[rows][:, :, None] + picked[:, None, :]).reshape(rows.size, -1)
    return grown, feasible


def _templates(member: int, relations: list[tuple[int, int, tuple[int, ...]]]) -> tuple[list[list], int]:
    """Balanced sets containing `member` with +1 (every relation of the dimension still adds up), those that
    stay at the member's level first, and how many of those there are."""
    if not any(member == total or member in parts for _, total, parts in relations):
        return [[(member, 1)]], 1
    if len(relations) == 1:  # a flat dimension: a sibling with -1, or the total with +1 (a part with +1)
        _, total, parts = relations[0]
        if member == total:
            return [[(member, 1), (p, 1)] for p in parts], len(parts)
        siblings = [[(member, 1), (p, -1)] for p in parts if p != member]
        return [*siblings, [(member, 1), (total, 1)]], len(siblings)
    found: list[dict[int, int]] = []
    seen: set[tuple] = set()
    part_sets = [(total, parts, frozenset(parts)) for _, total, parts in relations]

    def extend(signs: dict[int, int]) -> None:
        if len(found) >= MAX_TEMPLATES or len(signs) > MAX_TEMPLATE_MEMBERS:
            return
        for total, parts, part_set in part_sets:
            part_sum = sum(sign for m, sign in signs.items() if m in part_set)
            total_sign = signs.get(total, 0)
            if part_sum == total_sign:
                continue
            difference = total_sign - part_sum
            if abs(difference) == 1:
                for part in parts:
                    if part not in signs:
                        extend({**signs, part: difference})
            if total not in signs and abs(part_sum) == 1:
                extend({**signs, total: part_sum})
            return
        key = tuple(sorted(signs.items()))
        if key not in seen:
            seen.add(key)
            found.append(signs)

    extend({member: 1})
    ancestors = _ancestors(member, relations)
    level = sorted((t for t in found if not ancestors & set(t)), key=len)
    coarser = sorted((t for t in found if ancestors & set(t)), key=len)
    ordered = [[(member, 1), *((m, s) for m, s in t.items() if m != member)] for t in [*level, *coarser]]
    return ordered, len(level)


def _ancestors(member: int, relations: list[tuple[int, int, tuple[int, ...]]]) -> set[int]:
    """The totals `member` adds up into, directly or through other totals."""
    found: set[int] = set()
    frontier = [member]
    while frontier:
        current = frontier.pop()
        for _, total, parts in relations:
            if current in parts and total not in found:
                found.add(total)
                frontier.append(total)
    return found
