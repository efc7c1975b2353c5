"""Aggregates of the per-session safety results for the dashboard: breaches, monitoring compliance and the
time to discharge readiness, by clinic, protocol and infusion bucket (counts with their denominators).
"""

from __future__ import annotations

import pandas as pd

from transforms.safety.distribution import quantile_columns
from transforms.safety.monitoring_compliance import CHECKS

DIMS = ["clinic_id", "protocol", "infusion_bucket"]


def breach_summary(
    session_safety: pd.DataFrame, breaches: pd.DataFrame, events: pd.DataFrame, rule_order: list[str]
) -> pd.DataFrame:
    """Per (clinic, protocol, bucket, rule): sessions, sessions with the breach, and of those the ones whose
    detected event staff did not record (`breaches_not_recorded`: a possible under-reporting signal)."""
    staged = session_safety.loc[session_safety["session_staged"]]
    sessions = staged.groupby(DIMS).size().rename("sessions")
    unrecorded = set(
        events.loc[(events["origin"] == "vitals_detected") & events["matched_staff_ae_id"].isna(), "session_id"]
    )
    rows = []
    for rule in rule_order:
        hit = staged.loc[staged[f"breach_{rule}"]]
        detected_term = breaches.loc[breaches["rule"] == rule, "detected_term"].dropna()
        not_recorded = hit["session_id"].isin(unrecorded) if not detected_term.empty else pd.Series(False, hit.index)
        counts = pd.DataFrame(
            {
                "sessions_with_breach": hit.groupby(DIMS).size(),
                "breaches_not_recorded": not_recorded.groupby([hit[d] for d in DIMS]).sum(),
            }
        )
        counts = counts.reindex(sessions.index, fill_value=0)
        rows.append(counts.assign(rule=rule, sessions=sessions).reset_index())
    columns = [*DIMS, "rule", "sessions", "sessions_with_breach", "breaches_not_recorded"]
    if not rows:
        return pd.DataFrame(columns=columns)
    result = pd.concat(rows, ignore_index=True)[columns]
    return result.astype({c: "int64" for c in columns[-3:]}).sort_values([*DIMS, "rule"]).reset_index(drop=True)


def compliance_summary(session_safety: pd.DataFrame) -> pd.DataFrame:
    """Per (clinic, protocol, bucket, check): sessions the check applies to and sessions that passed it."""
    staged = session_safety.loc[session_safety["session_staged"]]
    rows = []
    for check in [*CHECKS, "monitoring_compliant"]:
        values = staged[check].astype("boolean")
        frame = staged[DIMS].assign(applies=values.notna(), passed=values.fillna(False).astype(bool))
        grouped = frame.groupby(DIMS).agg(sessions_evaluated=("applies", "sum"), sessions_passed=("passed", "sum"))
        rows.append(grouped.assign(check=check).reset_index())
    columns = [*DIMS, "check", "sessions_evaluated", "sessions_passed"]
    result = pd.concat(rows, ignore_index=True)[columns]
    result = result.loc[result["sessions_evaluated"] > 0]
    return (
        result.astype({"sessions_evaluated": "int64", "sessions_passed": "int64"})
        .sort_values([*DIMS, "check"])
        .reset_index(drop=True)
    )


def discharge_readiness(session_safety: pd.DataFrame) -> pd.DataFrame:
    """Per (clinic, protocol): distribution of the minutes to discharge readiness and of observation time."""
    staged = session_safety.loc[session_safety["session_staged"]]
    rows = []
    for measure, column in (
        ("ready_for_discharge_min", "ready_for_discharge_min"),
        ("observation_min", "discharge_min"),
        ("minutes_discharged_after_ready", "minutes_discharged_after_ready"),
    ):
        values = staged[["clinic_id", "protocol", column]].dropna()
        grouped = values.groupby(["clinic_id", "protocol"])[column]
        stats = grouped.agg(sessions="size", mean="mean", median="median")
        stats = stats.join(quantile_columns(grouped, {"p10": 0.1, "p90": 0.9}))
        rows.append(stats.reset_index().assign(measure=measure))
    not_ready = (
        staged.assign(never=staged["ready_for_discharge_min"].isna())
        .groupby(["clinic_id", "protocol"])["never"]
        .sum()
        .rename("sessions_never_ready")
    )
    columns = ["clinic_id", "protocol", "measure", "sessions", "mean", "median", "p10", "p90", "sessions_never_ready"]
    result = pd.concat(rows, ignore_index=True).join(not_ready, on=["clinic_id", "protocol"])
    result["sessions_never_ready"] = result["sessions_never_ready"].fillna(0).astype("int64")
    return result[columns].sort_values(["clinic_id", "protocol", "measure"]).reset_index(drop=True)
