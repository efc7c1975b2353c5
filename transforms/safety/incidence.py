"""Adverse-event incidence as a long cube of raw counts, for a static dashboard to filter and re-aggregate.

Two measures, each row carrying its numerator and denominator (no percentages: small-cell suppression is
applied at publication, on counts):
- `per_100_infusions`: events / infusions. Every dimension is concrete, so numerators add up over any filter;
  the denominator of a filtered view is the sum of `infusions` in `ae_exposure` over the same exposure filters
  (clinic, protocol, con-med stratum, infusion bucket). Event dimensions (origin, body system, term,
  severity, seriousness, relatedness) never change a denominator.
- `per_patient`: patients with at least one such event / patients exposed. Distinct patients do not add up
  over infusion buckets or event dimensions, so those rows are pre-computed with roll-up values: infusion
  bucket "all", term "all" (body-system level) or body system and term "all" (any event), severity /
  seriousness / relatedness "any". At most one of severity, seriousness and relatedness is concrete in a
  row (one event filter at a time: all combinations would make the cube ~10x larger for little use).
  Clinic, protocol and con-med stratum are patient attributes (one value per patient), so those rows do
  add up over them. Pick exactly one value (or the roll-up) per rolled-up dimension, never sum over them.

Events counted: `adverse_events.counts_in_incidence` (staff-recorded, plus detected or flagged events staff
did not record; never suicidality-unknown; only sessions that are staged). Infusion buckets come from the
rules (`reporting.infusion_buckets`).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

ALL, ANY = "all", "any"
EXPOSURE_DIMS = ["clinic_id", "protocol", "conmed_stratum", "infusion_bucket"]
EVENT_DIMS = ["origin", "body_system", "term", "severity", "seriousness", "relatedness"]
CUBE_COLUMNS = ["measure", *EXPOSURE_DIMS, *EVENT_DIMS, "numerator", "denominator"]


def exposure(sessions: pd.DataFrame) -> pd.DataFrame:
    """Infusions and patients per exposure cell, plus infusion_bucket "all" rows (distinct patients).

    `sessions`: staged sessions with clinic_id, protocol, conmed_stratum, infusion_bucket, patient_id.
    """
    cells = sessions.groupby(EXPOSURE_DIMS, observed=True).agg(
        infusions=("session_id", "size"), patients=("patient_id", "nunique")
    )
    patient_dims = EXPOSURE_DIMS[:-1]
    overall = sessions.groupby(patient_dims, observed=True).agg(
        infusions=("session_id", "size"), patients=("patient_id", "nunique")
    )
    overall = overall.assign(infusion_bucket=ALL).set_index("infusion_bucket", append=True)
    result = pd.concat([cells, overall]).reset_index()
    return result.sort_values(EXPOSURE_DIMS, kind="stable").reset_index(drop=True)


def incidence_cube(events: pd.DataFrame, exposure_cells: pd.DataFrame) -> pd.DataFrame:
    """The long cube (see module doc) from incidence events and `exposure` output."""
    counted = events.loc[events["counts_in_incidence"]].copy()
    for column in [*EXPOSURE_DIMS, *EVENT_DIMS]:
        counted[column] = counted[column].astype(str)
    per_infusion = counted.groupby(EXPOSURE_DIMS + EVENT_DIMS, observed=True).size().rename("numerator").reset_index()
    per_infusion = per_infusion.merge(
        exposure_cells.rename(columns={"infusions": "denominator"})[[*EXPOSURE_DIMS, "denominator"]],
        on=EXPOSURE_DIMS,
        how="left",
    )
    per_infusion["measure"] = "per_100_infusions"
    per_patient = _patients_with_event(counted).merge(
        exposure_cells.rename(columns={"patients": "denominator"})[[*EXPOSURE_DIMS, "denominator"]],
        on=EXPOSURE_DIMS,
        how="left",
    )
    per_patient["measure"] = "per_patient"
    cube = pd.concat([per_infusion, per_patient], ignore_index=True)[CUBE_COLUMNS]
    cube["numerator"] = cube["numerator"].astype("int64")
    cube["denominator"] = cube["denominator"].fillna(0).astype("int64")
    return cube.sort_values(CUBE_COLUMNS[:-2], kind="stable").reset_index(drop=True)


def _patients_with_event(counted: pd.DataFrame) -> pd.DataFrame:
    """Distinct patients per cell, over every combination of roll-ups (grouping sets).

    Works on integer codes (one factorization per column) so that the 24 stacked variants stay cheap.
    """
    keys = [*EXPOSURE_DIMS, *EVENT_DIMS]
    labels: dict[str, np.ndarray] = {}
    codes: dict[str, np.ndarray] = {}
    for column in ["patient_id", *keys]:
        values = counted[column] if column != "origin" else pd.Series(ANY, index=counted.index)
        code, uniques = pd.factorize(values, sort=True)
        roll = ALL if column in ("infusion_bucket", "body_system", "term") else ANY
        labels[column] = np.append(uniques.astype(object), roll)  # last code = the roll-up value
        codes[column] = code
    term_levels = [(), ("term",), ("body_system", "term")]  # concrete term, body-system level, any event
    variants = []
    for bucket, term_level, severity, seriousness, related in itertools.product(
        (False, True), term_levels, (False, True), (False, True), (False, True)
    ):
        if (not severity) + (not seriousness) + (not related) > 1:
            continue  # at most one concrete event filter: keeps the cube small enough for a static page
        rolled = set(term_level)
        rolled |= {"infusion_bucket"} if bucket else set()
        rolled |= {"severity"} if severity else set()
        rolled |= {"seriousness"} if seriousness else set()
        rolled |= {"relatedness"} if related else set()
        variant = {c: (np.full(len(counted), len(labels[c]) - 1) if c in rolled else codes[c]) for c in codes}
        variants.append(pd.DataFrame(variant))
    stacked = pd.concat(variants, ignore_index=True).drop_duplicates()
    counts = stacked.groupby(keys, sort=True).size().rename("numerator").reset_index()
    for column in keys:
        counts[column] = labels[column][counts[column].to_numpy()]
    return counts
