"""Views over time and across clinics: funnel plot, P and U charts per week, G chart between severe events.

These views publish the same totals as the incidence tables (a clinic's infusions, its sessions with an
adverse event, its counted events), so each takes the state of those totals from the view that owns them:
a total suppressed there is suppressed here (`forced`), a total shown there cannot serve here as a
complementary cell (`protected`). Weeks are published as `week_index` (1 = the first week of the data), not
as calendar dates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clinic_pipeline.dashboard.suppression import ALL, Complement, Relation, suppress_cells
from clinic_pipeline.dashboard.tables import PublishedTable, label_order, published_counts

NETWORK = "network"
FUNNEL_MEASURES = {"sessions_with_any_ae": "any adverse event", "sessions_with_severe_event": "a severe event"}


def clinic_totals(exposure: pd.DataFrame) -> pd.DataFrame:
    """Infusions per clinic ("all" = network) with their published state, from the exposure lattice."""
    mask = (exposure[["protocol", "conmed_stratum", "infusion_bucket"]] == ALL).all(axis=1)
    return exposure.loc[mask, ["clinic_id", "infusions", "suppressed"]].reset_index(drop=True)


def funnel_view(funnel_clinics: pd.DataFrame, exposure: pd.DataFrame) -> tuple[PublishedTable, pd.DataFrame]:
    """Clinics' proportions against their infusions, plus the network row; returns the table and the states
    of its counts (measure, clinic_id, count, suppressed) for the charts that publish the same totals."""
    totals = clinic_totals(exposure).rename(columns={"infusions": "exposure_n", "suppressed": "n_suppressed"})
    frame = funnel_clinics.copy()
    frame["clinic_id"] = frame["clinic_id"].astype(str)
    network = frame.groupby("measure", as_index=False)[["n", "count"]].sum().assign(clinic_id=ALL)
    network["target"] = frame.groupby("measure")["target"].first().reindex(network["measure"]).to_numpy()
    frame = pd.concat([frame, network], ignore_index=True)
    # Every (measure, clinic) present, so that suppression never has to add a cell the table would not show.
    grid = pd.MultiIndex.from_product([frame["measure"].unique(), frame["clinic_id"].unique()])
    frame = frame.set_index(["measure", "clinic_id"]).reindex(grid).rename_axis(["measure", "clinic_id"])
    frame[["n", "count"]] = frame[["n", "count"]].fillna(0).astype("int64")
    frame["target"] = frame.groupby(level="measure")["target"].transform("first")
    frame = frame.reset_index().merge(totals, on="clinic_id", how="left")
    frame["n_suppressed"] = frame["n_suppressed"].astype("boolean").fillna(True).astype(bool)
    frame["n_shown"] = ~frame["n_suppressed"]
    result = suppress_cells(
        frame,
        ["measure", "clinic_id"],
        ["count"],
        [Relation("clinic_id", ("count",))],
        complements=[Complement("count", "n", "n_shown")],
        forced=frame["n_suppressed"].to_numpy(),
    )
    if len(result.cells) != len(frame):
        raise RuntimeError("funnel suppression added cells to a complete grid")  # cannot happen: the grid is full
    frame["suppressed"] = result.suppressed
    order = {c: i for i, c in enumerate(label_order(frame["clinic_id"]))}
    frame = frame.sort_values(["measure", "clinic_id"], key=lambda s: s.map(order) if s.name == "clinic_id" else s)
    frame = frame.reset_index(drop=True)
    hidden = frame["suppressed"].to_numpy()
    out = pd.DataFrame(
        {
            "measure": frame["measure"].astype(str),
            "clinic_id": frame["clinic_id"].map(lambda c: NETWORK if c == ALL else c),
            "infusions": published_counts(frame["n"], frame["n_suppressed"].to_numpy()),
            "sessions_with_event": published_counts(frame["count"], hidden),
            "proportion": np.where(hidden, np.nan, frame["count"] / frame["n"].where(frame["n"] > 0)),
            "target": frame["target"].astype(float),
        }
    )
    for column in ("lower_95", "upper_95", "lower_998", "upper_998"):
        out[column] = np.where(hidden, np.nan, frame[column].astype(float))
    out["position"] = pd.Series(np.where(hidden, None, frame["position"].astype(object)), dtype=object)
    table = PublishedTable(
        "funnel_clinics",
        "Funnel plot: clinics' proportion of infusions with an event against their number of infusions",
        out,
        counts=("infusions", "sessions_with_event"),
        filters=("clinic_id",),
        notes="Network row: the target. Limits: 95 % and 99.8 %. A suppressed clinic is not plotted.",
    )
    states = frame[["measure", "clinic_id", "count", "suppressed"]].copy()
    return table, states


def funnel_limits_view(funnel_limits: pd.DataFrame) -> PublishedTable:
    """The limit curves (functions of the target and a grid of volumes: no counts of anyone)."""
    frame = funnel_limits.rename(columns={"n": "volume"})[
        ["measure", "volume", "target", "lower_95", "upper_95", "lower_998", "upper_998"]
    ]
    return PublishedTable("funnel_limits", "Funnel limits by volume", frame.reset_index(drop=True))


def spc_view(
    spc_weekly: pd.DataFrame, exposure: pd.DataFrame, funnel_states: pd.DataFrame, event_totals: pd.DataFrame
) -> PublishedTable:
    """P chart (infusions with an AE) and U chart (AEs per 100 infusions) per week, network and per clinic."""
    wide = _spc_wide(spc_weekly)
    if wide.empty:
        return _empty_spc()
    totals = wide.groupby("scope", as_index=False)[["n", "count_p", "count_u"]].sum().assign(week=ALL)
    cells = pd.concat([wide, totals], ignore_index=True)
    cells["week_complete"] = cells["week_complete"].astype("boolean").fillna(True).astype(bool)
    cells["n_shown"] = True
    is_total = (cells["week"] == ALL).to_numpy()
    clinic_of = cells["scope"].map(lambda s: ALL if s == NETWORK else s)
    # The per-scope totals are the exposure's infusions, the funnel's sessions with an AE and the incidence
    # table's events: their state comes from there.
    exposure_hidden = clinic_of.map(clinic_totals(exposure).set_index("clinic_id")["suppressed"])
    any_ae = funnel_states.loc[funnel_states["measure"] == "sessions_with_any_ae"].set_index("clinic_id")
    funnel_hidden = clinic_of.map(any_ae["suppressed"])
    events_hidden = clinic_of.map(event_totals.set_index("clinic_id")["suppressed"])
    external = pd.concat([exposure_hidden, funnel_hidden, events_hidden], axis=1).astype("boolean").fillna(True)
    forced = is_total & external.any(axis=1).to_numpy()
    measures = ("n", "count_p", "count_u")
    result = suppress_cells(
        cells,
        ["scope", "week"],
        list(measures),
        [Relation("scope", measures, total=NETWORK), Relation("week", measures, total=ALL)],
        complements=[Complement("count_p", "n", "n_shown")],
        forced=forced,
        protected=is_total,
    )
    if len(result.cells) != len(cells):
        raise RuntimeError("SPC suppression added cells to a complete grid")  # cannot happen: the grid is full
    cells["suppressed"] = result.suppressed
    scope_hidden = cells.loc[is_total].set_index("scope")["suppressed"]
    points = cells.loc[~is_total].copy()
    return _spc_table(spc_weekly, points, scope_hidden)


def _spc_wide(spc_weekly: pd.DataFrame) -> pd.DataFrame:
    """One row per (scope, week) of every scope and week, zeros where a scope had no infusion that week."""
    columns = ["scope", "week", "week_complete", "n", "count_p", "count_u"]
    if spc_weekly.empty:
        return pd.DataFrame(columns=columns)
    frame = spc_weekly.assign(scope=spc_weekly["scope"].astype(str), week=spc_weekly["week_index"].astype(str))
    grid = pd.MultiIndex.from_product([sorted(frame["scope"].unique()), sorted(frame["week"].unique(), key=int)])
    p = frame.loc[frame["chart"] == "p_sessions_with_ae"].set_index(["scope", "week"]).reindex(grid)
    u = frame.loc[frame["chart"] == "u_events_per_100_infusions"].set_index(["scope", "week"]).reindex(grid)
    wide = pd.DataFrame(
        {
            "n": p["n"].fillna(u["n"]).fillna(0),
            "count_p": p["count"].fillna(0),
            "count_u": u["count"].fillna(0),
        }
    ).astype("int64")
    complete = frame.groupby("week")["week_complete"].all()
    wide = wide.rename_axis(["scope", "week"]).reset_index()
    wide["week_complete"] = wide["week"].map(complete).astype(bool)
    return wide[columns]


def _spc_table(spc_weekly: pd.DataFrame, points: pd.DataFrame, scope_hidden: pd.Series) -> PublishedTable:
    """Both charts for every (scope, week) point of the lattice, values from the mart (none: no infusion)."""
    mart = spc_weekly.assign(scope=spc_weekly["scope"].astype(str), week=spc_weekly["week_index"].astype(str))
    charts = sorted(mart["chart"].astype(str).unique())
    grid = pd.concat([points.assign(chart=c) for c in charts], ignore_index=True)
    frame = grid.merge(mart.drop(columns=["n", "week_complete"]), on=["chart", "scope", "week"], how="left")
    frame["count"] = np.where(frame["chart"] == "p_sessions_with_ae", frame["count_p"], frame["count_u"])
    centers = mart.groupby(["chart", "scope"])["center"].first()
    frame["center"] = pd.MultiIndex.from_frame(frame[["chart", "scope"]]).map(centers)
    hidden = frame["suppressed"].to_numpy(dtype=bool)
    center_hidden = frame["scope"].map(scope_hidden).astype("boolean").fillna(True).to_numpy(dtype=bool)
    limits_hidden = hidden | center_hidden
    out = pd.DataFrame(
        {
            "chart": frame["chart"].astype(str).to_numpy(),
            "scope": frame["scope"].to_numpy(),
            "week_index": frame["week"].astype("int64").to_numpy(),
            "week_complete": frame["week_complete"].astype(bool).to_numpy(),
            "infusions": published_counts(frame["n"], hidden),
            "count": published_counts(frame["count"], hidden),
            "value": np.where(hidden, np.nan, frame["value"].astype(float)),
            "center": np.where(center_hidden, np.nan, frame["center"].astype(float)),
            "lcl": np.where(limits_hidden, np.nan, frame["lcl"].astype(float)),
            "ucl": np.where(limits_hidden, np.nan, frame["ucl"].astype(float)),
        }
    )
    for column in ("beyond_limits", "run_signal", "signal"):
        flags = frame[column].astype("boolean")
        out[column] = flags.mask(pd.Series(limits_hidden)).to_numpy()
    out = out.sort_values(["chart", "scope", "week_index"], kind="stable").reset_index(drop=True)
    return PublishedTable(
        "spc_weekly",
        "P chart (infusions with an adverse event) and U chart (adverse events per 100 infusions) by week",
        out,
        counts=("infusions", "count"),
        filters=("scope",),
        notes="Week 1 = the first week in the data; the last week may be incomplete. Limits and signals are "
        "withheld with a suppressed point or a suppressed scope total.",
    )


def _empty_spc() -> PublishedTable:
    columns = ["chart", "scope", "week_index", "week_complete", "infusions", "count", "value", "center", "lcl", "ucl"]
    return PublishedTable("spc_weekly", "P and U charts by week", pd.DataFrame(columns=columns), ("infusions", "count"))


def g_chart_view(spc_g_chart: pd.DataFrame, funnel_states: pd.DataFrame) -> PublishedTable:
    """Infusions between severe events, for the network and for each clinic whose severe-event count is shown.

    A scope's points count its severe events, and its gaps add up to its infusions minus those events (both
    published by the funnel), so: a scope is drawn only when its severe-event count is shown, gaps of 1-10
    are shown as "<11" and complementary gaps hide any single small gap.
    """
    severe = funnel_states.loc[funnel_states["measure"] == "sessions_with_severe_event"]
    shown_scopes = {NETWORK if c == ALL else c for c in severe.loc[~severe["suppressed"], "clinic_id"]}
    frame = spc_g_chart.loc[spc_g_chart["scope"].astype(str).isin(shown_scopes)].copy()
    frame["scope"] = frame["scope"].astype(str)
    hidden = np.zeros(len(frame), dtype=bool)
    for _, rows in frame.groupby("scope", sort=True):
        gaps = rows[["event_index", "infusions_between"]].assign(event_index=rows["event_index"].astype(str))
        total = pd.DataFrame({"event_index": [ALL], "infusions_between": [gaps["infusions_between"].sum()]})
        cells = pd.concat([gaps, total], ignore_index=True)
        is_total = (cells["event_index"] == ALL).to_numpy()
        result = suppress_cells(
            cells,
            ["event_index"],
            ["infusions_between"],
            [Relation("event_index", ("infusions_between",))],
            protected=is_total,
        )
        hidden[frame.index.get_indexer(rows.index)] = result.suppressed[~is_total]
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "scope": frame["scope"],
            "event_index": frame["event_index"].astype("int64"),
            "open_interval": frame["open_interval"].astype(bool),
            "infusions_between": published_counts(frame["infusions_between"].round().astype("int64"), hidden),
            "center": frame["center"].astype(float),
            "center_median": frame["center_median"].astype(float),
            "lcl": frame["lcl"].astype(float),
            "ucl": frame["ucl"].astype(float),
            "beyond_limits": frame["beyond_limits"].astype(bool),
            "run_signal": frame["run_signal"].astype(bool),
            "signal": frame["signal"].astype(bool),
        }
    )
    return PublishedTable(
        "spc_g_chart",
        "G chart: infusions between severe events",
        out.sort_values(["scope", "event_index"], kind="stable").reset_index(drop=True),
        counts=("infusions_between",),
        filters=("scope",),
        notes="Drawn for the network and for clinics with at least 11 severe events; gaps of 1-10 infusions "
        'are shown in the "<11" band. The last point (open) counts the infusions since the last severe event.',
    )
