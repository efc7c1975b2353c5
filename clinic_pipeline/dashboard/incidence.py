"""Adverse-event incidence for every filter combination the page offers, suppressed before it reaches the page.

Two lattices, both from the publication marts `ae_exposure` and `ae_incidence`:
- exposure: infusions and patients per (clinic, protocol, con-med stratum, infusion bucket), each filter a
  concrete value or "all";
- incidence: events (per-100-infusion numerator) and patients with at least one event (per-patient numerator)
  per exposure combination x event filter (any event, or one severity / seriousness / relatedness value) x
  row (any event, a body system, a term).

Counts that add up are summed here (events along every dimension; patients over clinic, protocol and stratum,
which are patient attributes); per-patient counts over infusion buckets and event filters come pre-computed
from the mart (distinct patients do not add up). The page computes rates from published counts only.
Dimensions are integer codes (code 0 = the total member) so that a network-month's ~350,000 cells stay fast.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from clinic_pipeline.dashboard.suppression import Complement, Relation, Suppression, suppress_cells
from clinic_pipeline.dashboard.tables import natural_key

ALL, ANY = "all", "any"
EXPOSURE_DIMS = ["clinic_id", "protocol", "conmed_stratum", "infusion_bucket"]
PATIENT_DIMS = EXPOSURE_DIMS[:3]  # patient attributes: per-patient counts add up over these
EVENT_FILTERS = ["severity", "seriousness", "relatedness"]
INCIDENCE_DIMS = [*EXPOSURE_DIMS, "event_filter", "row"]
TOTAL = 0  # the code of every dimension's total member ("all" / "any")


@dataclass
class IncidenceCoding:
    """Labels of the integer codes: per dimension, code -> label (code 0 is the total member)."""

    labels: dict[str, list[str]] = field(default_factory=dict)
    rows: list[dict[str, str]] = field(default_factory=list)  # row code -> {level, body_system, term}

    def code_of(self, dim: str) -> dict[str, int]:
        return {label: code for code, label in enumerate(self.labels[dim])}


@dataclass
class IncidenceLattices:
    coding: IncidenceCoding
    exposure: pd.DataFrame  # EXPOSURE_DIMS codes + infusions, patients, suppressed
    incidence: pd.DataFrame  # INCIDENCE_DIMS codes + events, patients, exposed_patients, suppressed
    exposure_result: Suppression
    incidence_result: Suppression
    exposure_relations: list[Relation]
    incidence_relations: list[Relation]


def suppressed_incidence(cube: pd.DataFrame, exposure_mart: pd.DataFrame) -> IncidenceLattices:
    """Both lattices with their suppression (exposure first: its state feeds the incidence complement rule)."""
    coding = incidence_coding(cube, exposure_mart)
    exposure = exposure_lattice(exposure_mart, coding)
    exp_relations = exposure_relations()
    exposure_result = suppress_cells(exposure, EXPOSURE_DIMS, ["infusions", "patients"], exp_relations)
    exposure = _sorted(exposure_result.cells.assign(suppressed=exposure_result.suppressed), EXPOSURE_DIMS)
    incidence = incidence_lattice(cube, exposure, coding)
    inc_relations = incidence_relations(coding)
    incidence_result = suppress_cells(
        incidence,
        INCIDENCE_DIMS,
        ["events", "patients"],
        inc_relations,
        complements=[Complement("patients", "exposed_patients", "exposure_shown")],
        unknown_absent=exposure.loc[exposure["suppressed"], EXPOSURE_DIMS],  # the page lists nothing there
    )
    incidence = with_exposure(incidence_result.cells[[*INCIDENCE_DIMS, "events", "patients"]], exposure)
    incidence = _sorted(incidence.assign(suppressed=incidence_result.suppressed), INCIDENCE_DIMS)
    return IncidenceLattices(
        coding, exposure, incidence, exposure_result, incidence_result, exp_relations, inc_relations
    )


def labeled(frame: pd.DataFrame, coding: IncidenceCoding, dims: list[str]) -> pd.DataFrame:
    """A lattice with labels instead of codes."""
    out = frame.copy()
    for dim in dims:
        out[dim] = np.asarray(coding.labels[dim], dtype=object)[out[dim].to_numpy()]
    return out


def exposure_labeled(lattices: IncidenceLattices) -> pd.DataFrame:
    """The suppressed exposure lattice with labels: clinic_id, protocol, conmed_stratum, infusion_bucket,
    infusions, patients, suppressed (the denominators every other view takes its state from)."""
    return labeled(lattices.exposure, lattices.coding, EXPOSURE_DIMS)


def event_totals(lattices: IncidenceLattices) -> pd.DataFrame:
    """Counted events of any kind per clinic ("all" = network), with their state: clinic_id, events, suppressed."""
    frame = lattices.incidence
    mask = (frame[["protocol", "conmed_stratum", "infusion_bucket", "event_filter", "row"]] == TOTAL).all(axis=1)
    rows = labeled(frame.loc[mask], lattices.coding, EXPOSURE_DIMS)
    return rows[["clinic_id", "events", "suppressed"]].reset_index(drop=True)


def incidence_coding(cube: pd.DataFrame, exposure_mart: pd.DataFrame) -> IncidenceCoding:
    coding = IncidenceCoding()
    for dim in EXPOSURE_DIMS:
        values = set(exposure_mart[dim].astype(str).unique()) | set(cube[dim].astype(str).unique())
        coding.labels[dim] = [ALL, *sorted(values - {ALL}, key=natural_key)]
    filters = [ANY]
    for dim in EVENT_FILTERS:
        values = set(cube[dim].astype(str).unique()) - {ANY}
        filters += [f"{dim}={v}" for v in sorted(values, key=natural_key)]
    coding.labels["event_filter"] = filters
    pairs = cube.loc[cube["term"] != ALL, ["body_system", "term"]].astype(str).drop_duplicates()
    coding.rows = [{"level": "any", "body_system": ALL, "term": ALL}]
    for system, terms in sorted(pairs.groupby("body_system")["term"], key=lambda item: natural_key(item[0])):
        coding.rows.append({"level": "body_system", "body_system": system, "term": ALL})
        coding.rows += [{"level": "term", "body_system": system, "term": t} for t in sorted(terms, key=natural_key)]
    coding.labels["row"] = [_row_label(r) for r in coding.rows]
    return coding


def exposure_relations() -> list[Relation]:
    both = ("infusions", "patients")
    return [Relation(d, both, total=TOTAL) for d in PATIENT_DIMS] + [
        Relation("infusion_bucket", ("infusions",), total=TOTAL)
    ]


def incidence_relations(coding: IncidenceCoding) -> list[Relation]:
    """Events add up along every dimension; patients only over the patient attributes."""
    relations = [Relation(d, ("events", "patients"), total=TOTAL) for d in PATIENT_DIMS]
    relations.append(Relation("infusion_bucket", ("events",), total=TOTAL))
    filters = coding.labels["event_filter"]
    for dim in EVENT_FILTERS:
        parts = tuple(code for code, label in enumerate(filters) if label.startswith(f"{dim}="))
        if parts:
            relations.append(Relation("event_filter", ("events",), total=TOTAL, parts=parts))
    systems = [code for code, row in enumerate(coding.rows) if row["level"] == "body_system"]
    relations.append(Relation("row", ("events",), total=TOTAL, parts=tuple(systems)))
    for system in systems:
        name = coding.rows[system]["body_system"]
        terms = tuple(c for c, r in enumerate(coding.rows) if r["level"] == "term" and r["body_system"] == name)
        relations.append(Relation("row", ("events",), total=system, parts=terms))
    return relations


def exposure_lattice(exposure: pd.DataFrame, coding: IncidenceCoding) -> pd.DataFrame:
    """Infusions and patients for every combination of concrete / "all" exposure filters (codes)."""
    frame = _encode(exposure, EXPOSURE_DIMS, coding)[[*EXPOSURE_DIMS, "infusions", "patients"]]
    frames = []
    for rolled in _subsets(PATIENT_DIMS):
        keep = [d for d in EXPOSURE_DIMS if d not in rolled]
        summed = frame.groupby(keep, sort=False)[["infusions", "patients"]].sum().reset_index()
        frames.append(summed.assign(**dict.fromkeys(rolled, TOTAL)))
    lattice = pd.concat(frames, ignore_index=True) if frames else frame
    return _sorted(lattice[[*EXPOSURE_DIMS, "infusions", "patients"]], EXPOSURE_DIMS)


def incidence_lattice(cube: pd.DataFrame, exposure: pd.DataFrame, coding: IncidenceCoding) -> pd.DataFrame:
    """Events and patients with an event for every exposure combination x event filter x row (codes)."""
    events = _event_counts(cube.loc[cube["measure"] == "per_100_infusions"], coding)
    patients = _patient_counts(cube.loc[cube["measure"] == "per_patient"], coding)
    lattice = events.merge(patients, on=INCIDENCE_DIMS, how="outer")
    lattice[["events", "patients"]] = lattice[["events", "patients"]].fillna(0).astype("int64")
    return _sorted(with_exposure(lattice, exposure), INCIDENCE_DIMS)


def with_exposure(lattice: pd.DataFrame, exposure: pd.DataFrame) -> pd.DataFrame:
    """Join the patients exposed of each cell's selection and whether that count is shown."""
    exposed = exposure[[*EXPOSURE_DIMS, "patients", "suppressed"]].rename(
        columns={"patients": "exposed_patients", "suppressed": "exposure_suppressed"}
    )
    lattice = lattice.astype(dict.fromkeys(INCIDENCE_DIMS, "int64")).merge(exposed, on=EXPOSURE_DIMS, how="left")
    lattice["exposed_patients"] = lattice["exposed_patients"].fillna(0).astype("int64")
    lattice["exposure_shown"] = ~lattice["exposure_suppressed"].astype("boolean").fillna(False).astype(bool)
    return lattice.drop(columns="exposure_suppressed")


def _event_counts(per_infusion: pd.DataFrame, coding: IncidenceCoding) -> pd.DataFrame:
    """Per-100-infusion numerators summed into every lattice cell (they add up along every dimension)."""
    columns = [*INCIDENCE_DIMS, "events"]
    if per_infusion.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})
    base = _encode(per_infusion, EXPOSURE_DIMS, coding)
    base = _encode_rows(base, coding)
    filter_codes = coding.code_of("event_filter")
    for dim in EVENT_FILTERS:
        base[f"filter_{dim}"] = (dim + "=" + base[dim].astype(str)).map(filter_codes).astype("int64")
    detail = [*EXPOSURE_DIMS, "system_row", "term_row", *(f"filter_{d}" for d in EVENT_FILTERS)]
    base = base.groupby(detail, sort=False)["numerator"].sum().rename("events").reset_index()
    # Every variant (exposure filters rolled up or not x event filter x row level) stacked as integer codes,
    # then summed in one group-by: the 192 variants cost one pass instead of 192.
    codes = {c: base[c].to_numpy(dtype=np.int64) for c in detail}
    zeros = np.zeros(len(base), dtype=np.int64)
    variants = []
    for rolled in _subsets(EXPOSURE_DIMS):
        exposure_codes = [zeros if d in rolled else codes[d] for d in EXPOSURE_DIMS]
        for event_filter in [None, *(f"filter_{d}" for d in EVENT_FILTERS)]:
            for row in ("term_row", "system_row", None):
                picked = [codes[event_filter] if event_filter else zeros, codes[row] if row else zeros]
                variants.append(np.column_stack([*exposure_codes, *picked]))
    stacked = pd.DataFrame(np.concatenate(variants), columns=INCIDENCE_DIMS)
    stacked["events"] = np.tile(base["events"].to_numpy(dtype=np.int64), len(variants))
    return stacked.groupby(INCIDENCE_DIMS, sort=False)["events"].sum().reset_index()[columns]


def _patient_counts(per_patient: pd.DataFrame, coding: IncidenceCoding) -> pd.DataFrame:
    """Per-patient numerators: pre-computed roll-ups from the mart, summed over the patient attributes."""
    columns = [*INCIDENCE_DIMS, "patients"]
    if per_patient.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})
    frame = _encode(per_patient, EXPOSURE_DIMS, coding)
    frame = _encode_rows(frame, coding)
    frame["row"] = np.where(frame["term"] != ALL, frame["term_row"], frame["system_row"])
    labels = pd.Series(ANY, index=frame.index, dtype=object)
    for dim in EVENT_FILTERS:
        concrete = frame[dim] != ANY
        labels[concrete] = dim + "=" + frame.loc[concrete, dim].astype(str)
    frame["event_filter"] = labels.map(coding.code_of("event_filter")).astype("int64")
    frame = frame.rename(columns={"numerator": "patients"})
    frames = []
    for rolled in _subsets(PATIENT_DIMS):
        keep = [d for d in INCIDENCE_DIMS if d not in rolled]
        summed = frame.groupby(keep, sort=False)["patients"].sum().reset_index()
        frames.append(summed.assign(**dict.fromkeys(rolled, TOTAL))[columns])
    return pd.concat(frames, ignore_index=True)


def _encode(frame: pd.DataFrame, dims: list[str], coding: IncidenceCoding) -> pd.DataFrame:
    out = frame.copy()
    for dim in dims:
        out[dim] = out[dim].astype(str).map(coding.code_of(dim)).astype("int64")
    return out


def _encode_rows(frame: pd.DataFrame, coding: IncidenceCoding) -> pd.DataFrame:
    """system_row / term_row: the row codes of each event's body system and term (0 when rolled up)."""
    codes = {f"{r['body_system']}\x1f{r['term']}": c for c, r in enumerate(coding.rows)}
    system = frame["body_system"].astype(str)
    frame["system_row"] = (system + "\x1f" + ALL).map(codes).fillna(TOTAL).astype("int64")
    frame["term_row"] = (system + "\x1f" + frame["term"].astype(str)).map(codes).fillna(TOTAL).astype("int64")
    return frame


def _row_label(row: dict[str, str]) -> str:
    if row["level"] == "any":
        return "Any adverse event"
    return row["body_system"] if row["level"] == "body_system" else row["term"]


def _subsets(dims: list[str]) -> list[tuple[str, ...]]:
    return [c for size in range(len(dims) + 1) for c in itertools.combinations(dims, size)]


def _sorted(frame: pd.DataFrame, dims: list[str]) -> pd.DataFrame:
    frame = frame.astype(dict.fromkeys(dims, "int64"))
    return frame.sort_values(dims, kind="stable").reset_index(drop=True)
