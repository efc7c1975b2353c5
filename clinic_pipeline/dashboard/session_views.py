"""Views of what happens during a session: BP/HR/SpO2 curves with threshold bands, baseline-vs-peak shifts,
dissociation (CADSS) by infusion number, reading-rule breaches, monitoring compliance, discharge readiness.

Distributions (curves, CADSS, discharge readiness) publish their statistics only where the count behind them
is shown (a mean of 3 readings is close to one patient's values). Tables with "all" rows (shifts, breaches,
monitoring) are lattices with complementary suppression. Breaches and monitoring checks are counted out of
sessions: the denominator is the exposure lattice's infusions (same sessions), with its state.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clinic_pipeline.dashboard.suppression import ALL, Relation, is_small, suppress_cells, suppress_in_turn
from clinic_pipeline.dashboard.tables import PublishedTable, primary_only, published_counts, rollup

SESSION_DIMS = ["clinic_id", "protocol", "infusion_bucket"]


def bp_curves_view(bp_curves: pd.DataFrame) -> PublishedTable:
    frame = bp_curves.reset_index(drop=True)
    readings, sessions = primary_only(frame["readings"]), primary_only(frame["sessions"])
    withheld = (readings.isna() | sessions.isna()).to_numpy()
    out = pd.DataFrame(
        {
            "protocol": frame["protocol"].astype(str),
            "minute_bin": frame["minute_bin"].astype("int64"),
            "measure": frame["measure"].astype(str),
            "readings": readings,
            "sessions": sessions,
        }
    )
    for column in ("mean", "median", "p10", "p90"):
        out[column] = np.where(withheld, np.nan, frame[column].astype(float))
    return PublishedTable(
        "bp_curves",
        "Vital signs by minute from the start of dosing (5-min bins; baseline at -5)",
        out,
        counts=("readings", "sessions"),
        filters=("protocol",),
        notes="Median with the 10th-90th percentile band; a bin with fewer than 11 sessions or readings is not drawn.",
    )


def thresholds_view(rule_thresholds: pd.DataFrame) -> PublishedTable:
    frame = rule_thresholds.reset_index(drop=True)
    frame = frame.assign(protocol=frame["protocol"].astype(str))
    return PublishedTable(
        "rule_thresholds",
        "Reading-rule thresholds per protocol (the bands on the vital-sign charts)",
        frame,
        filters=("protocol",),
    )


def bp_shift_view(bp_shift_table: pd.DataFrame) -> PublishedTable:
    """Sessions per baseline band x peak band, per protocol and for all protocols (complementary over protocol)."""
    keys = ["protocol", "baseline_band", "peak_band"]
    cells = rollup(bp_shift_table, keys, ["protocol"], ["sessions"])
    result = suppress_cells(cells, keys, ["sessions"], [Relation("protocol", ("sessions",))])
    out = result.cells[keys].copy()
    out["sessions"] = published_counts(result.cells["sessions"], result.suppressed)
    return PublishedTable(
        "bp_shift_table",
        "Baseline vs peak blood pressure band (sessions)",
        out,
        counts=("sessions",),
        filters=("protocol",),
        notes="Band = the worse of systolic and diastolic. No row or column totals are published.",
    )


def cadss_view(cadss_by_infusion: pd.DataFrame) -> PublishedTable:
    frame = cadss_by_infusion.reset_index(drop=True)
    ratings = primary_only(frame["ratings"])
    rest = frame["ratings"] - frame["over_threshold"]
    over_hidden = ratings.isna().to_numpy() | is_small(frame["over_threshold"]) | is_small(rest)
    out = pd.DataFrame(
        {
            "protocol": frame["protocol"].astype(str),
            "infusion_label": frame["infusion_label"].astype(str),
            "infusion_order": frame["infusion_order"].astype("int64"),
            "timepoint": frame["timepoint"].astype(str),
            "ratings": ratings,
            "over_threshold": published_counts(frame["over_threshold"], over_hidden),
            "pct_over_threshold": np.where(over_hidden, np.nan, 100 * frame["over_threshold"] / frame["ratings"]),
        }
    )
    for column in ("mean", "median", "p10", "p25", "p75", "p90"):
        out[column] = np.where(ratings.isna(), np.nan, frame[column].astype(float))
    return PublishedTable(
        "cadss_by_infusion",
        "Dissociation (CADSS) by infusion number, at 40 min and at discharge",
        out,
        counts=("ratings", "over_threshold"),
        filters=("protocol",),
        notes="Over threshold = CADSS > 4 (dissociation). Median with the interquartile range.",
    )


def breach_view(breach_summary: pd.DataFrame, exposure: pd.DataFrame) -> PublishedTable:
    """Sessions with each reading-rule breach (and breaches staff did not record), out of all sessions."""
    keys = [*SESSION_DIMS, "rule"]
    measures = ["sessions_with_breach", "breaches_not_recorded"]
    cells = _with_sessions(rollup(breach_summary, keys, SESSION_DIMS, measures), exposure)
    cells, hidden = suppress_in_turn(
        cells,
        keys,
        [("sessions_with_breach", "sessions"), ("breaches_not_recorded", "sessions_with_breach")],
        SESSION_DIMS,
        shown_columns={"sessions": "sessions_shown"},
    )
    cells = _with_sessions(cells[[*keys, *measures]], exposure)
    out = cells[keys].copy()
    out["sessions"] = published_counts(cells["sessions"], ~cells["sessions_shown"].to_numpy())
    out["sessions_with_breach"] = published_counts(cells["sessions_with_breach"], hidden["sessions_with_breach"])
    rate_shown = (
        ~hidden["sessions_with_breach"] & cells["sessions_shown"].to_numpy() & (cells["sessions"] > 0).to_numpy()
    )
    out["pct_sessions"] = np.where(rate_shown, 100 * cells["sessions_with_breach"] / cells["sessions"].clip(1), np.nan)
    out["breaches_not_recorded"] = published_counts(cells["breaches_not_recorded"], hidden["breaches_not_recorded"])
    return PublishedTable(
        "breach_summary",
        "Reading-rule breaches: sessions with a breach, and breaches staff did not record as an adverse event",
        out,
        counts=("sessions", "sessions_with_breach", "breaches_not_recorded"),
        filters=tuple(SESSION_DIMS),
        notes="A breach is a reading rule, not a symptomatic event. 'Not recorded': a detected event that no "
        "staff-recorded adverse event matches (a possible under-reporting signal).",
    )


def monitoring_view(monitoring_compliance: pd.DataFrame, exposure: pd.DataFrame) -> PublishedTable:
    keys = [*SESSION_DIMS, "check"]
    measures = ["sessions_evaluated", "sessions_passed"]
    cells = _with_sessions(rollup(monitoring_compliance, keys, SESSION_DIMS, measures), exposure)
    cells, hidden = suppress_in_turn(
        cells,
        keys,
        [("sessions_evaluated", "sessions"), ("sessions_passed", "sessions_evaluated")],
        SESSION_DIMS,
        shown_columns={"sessions": "sessions_shown"},
        forced=_hidden_sessions_evaluated(cells, monitoring_compliance, exposure),
    )
    cells = cells.astype(dict.fromkeys(measures, "int64"))
    out = cells[keys].copy()
    out["sessions_evaluated"] = published_counts(cells["sessions_evaluated"], hidden["sessions_evaluated"])
    out["sessions_passed"] = published_counts(cells["sessions_passed"], hidden["sessions_passed"])
    rate_hidden = hidden["sessions_evaluated"] | hidden["sessions_passed"]
    out["pct_passed"] = np.where(
        rate_hidden, np.nan, 100 * cells["sessions_passed"] / cells["sessions_evaluated"].clip(lower=1)
    )
    return PublishedTable(
        "monitoring_compliance",
        "Monitoring compliance: sessions that passed each check",
        out,
        counts=("sessions_evaluated", "sessions_passed"),
        filters=tuple(SESSION_DIMS),
        notes="Checks: pre-dose BP, a reading near 40 min, a reading before discharge, reading cadence, >= 2 h "
        "observation (esketamine), discharged when ready; 'monitoring_compliant' = every applicable check.",
    )


def _hidden_sessions_evaluated(
    cells: pd.DataFrame, monitoring_compliance: pd.DataFrame, exposure: pd.DataFrame
) -> np.ndarray:
    """Rows whose evaluated sessions equal an exposure count hidden there: the sessions of the row when the
    check applies to every protocol, else (an "all protocols" row of a check that applies to some protocols,
    like the esketamine-only 2-hour observation) the sessions of those protocols."""
    hidden = ~cells["sessions_shown"].to_numpy()
    protocols = set(monitoring_compliance["protocol"].astype(str))
    applies = monitoring_compliance.loc[monitoring_compliance["sessions_evaluated"] > 0]
    state = exposure.loc[exposure["conmed_stratum"] == ALL].set_index(SESSION_DIMS)["suppressed"]
    for check, rows in applies.groupby("check"):
        subset = set(rows["protocol"].astype(str))
        if subset == protocols:
            continue
        mask = ((cells["check"] == check) & (cells["protocol"] == ALL)).to_numpy()
        for protocol in subset:
            key = pd.MultiIndex.from_arrays(
                [cells.loc[mask, "clinic_id"], [protocol] * int(mask.sum()), cells.loc[mask, "infusion_bucket"]]
            )
            hidden[mask] |= state.reindex(key).fillna(False).to_numpy(dtype=bool)
    return hidden


def discharge_view(discharge_readiness: pd.DataFrame, exposure: pd.DataFrame) -> PublishedTable:
    """Minutes to discharge readiness and observation time per clinic and protocol (no "all" rows: quantiles
    do not add up). The sessions with a time are hidden when all sessions minus them is 1-10."""
    frame = discharge_readiness.reset_index(drop=True)
    frame = frame.assign(clinic_id=frame["clinic_id"].astype(str), protocol=frame["protocol"].astype(str))
    frame = frame.assign(infusion_bucket=ALL)
    frame = _with_sessions(frame, exposure, column="all_sessions")
    small = is_small(frame["sessions"])
    rest = frame["all_sessions"] - frame["sessions"]
    count_hidden = small | (frame["sessions_shown"].to_numpy() & is_small(rest)) | ~frame["sessions_shown"].to_numpy()
    out = pd.DataFrame(
        {
            "clinic_id": frame["clinic_id"],
            "protocol": frame["protocol"],
            "measure": frame["measure"].astype(str),
            "sessions": published_counts(frame["sessions"], count_hidden),
        }
    )
    for column in ("mean", "median", "p10", "p90"):
        out[column] = np.where(small, np.nan, frame[column].astype(float))
    out["sessions_never_ready"] = primary_only(frame["sessions_never_ready"])
    return PublishedTable(
        "discharge_readiness",
        "Discharge readiness: minutes to readiness, observation time, minutes discharged after readiness",
        out,
        counts=("sessions", "sessions_never_ready"),
        filters=("clinic_id", "protocol"),
        notes="Ready = every later reading acceptable and dissociation resolved (docs/safety-metrics.md).",
    )


def _with_sessions(cells: pd.DataFrame, exposure: pd.DataFrame, column: str = "sessions") -> pd.DataFrame:
    """Join the sessions (exposure infusions over all con-med strata) as `column`, and `sessions_shown`."""
    sessions = exposure.loc[exposure["conmed_stratum"] == ALL, [*SESSION_DIMS, "infusions", "suppressed"]]
    sessions = sessions.rename(columns={"infusions": column, "suppressed": "sessions_hidden"})
    out = cells.merge(sessions, on=SESSION_DIMS, how="left")
    out[column] = out[column].fillna(0).astype("int64")
    out["sessions_shown"] = ~out["sessions_hidden"].astype("boolean").fillna(True).astype(bool)
    return out.drop(columns="sessions_hidden")
