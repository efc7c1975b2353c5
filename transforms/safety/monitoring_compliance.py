"""Monitoring compliance per session: were the readings taken that the protocol asks for, and was the
patient discharged only once ready?

Checks (thresholds per protocol in `monitoring`, sources in safety_rules.yaml):
- `predose_bp_recorded`: a BP before dosing, no older than `predose_reading_within_min`;
- `reading_near_40_min`: a post-dose reading within `reading_near_tolerance_min` of `reading_near_min`
  (REMS: BP at ~40 min, the usual peak);
- `reading_before_discharge`: the last reading no more than `reading_before_discharge_within_min` before
  discharge;
- `cadence_during_infusion_met` / `cadence_overall_met`: no gap between post-dose readings (counted from the
  start of dosing) longer than `max_gap_during_infusion_min` while the drug runs, `max_reading_gap_min` at any
  time up to discharge. A gap can also be a reading held in quarantine: read it with the data-quality banner;
- `min_observation_met`: discharge at least `min_observation_min` after the start (esketamine REMS 2 h); NA
  where the protocol sets no minimum;
- `discharged_when_ready`: discharge at or after `ready_for_discharge_min`: the first reading, at or after
  both the end of dosing and the ~40 min check (`reading_near_min`, the expected BP and dissociation peak),
  from which every later reading is acceptable (SBP and DBP within `discharge_bp_within_pct_of_baseline` % of
  baseline or not above the pre-dose rule, HR not above `heart_rate_high`, SpO2 not below `spo2_low`).
  Dissociation must have resolved too: with a CADSS above threshold at its peak, readiness is not before the
  discharge rating that shows it resolved; still above threshold at discharge, the patient was never ready.
  That minute also answers the REMS question "when would the patient have been ready to leave?".
`monitoring_compliant` is True when every applicable check passes; a session without readings fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transforms.safety.rule_set import SafetyRules

CHECKS = [
    "predose_bp_recorded",
    "reading_near_40_min",
    "reading_before_discharge",
    "cadence_during_infusion_met",
    "cadence_overall_met",
    "min_observation_met",
    "discharged_when_ready",
]


def _limits(rules: SafetyRules, keys: pd.Series) -> pd.DataFrame:
    """Per row of `keys` (categorical rules keys): every number the checks need."""
    protocols = rules.all_protocols()

    def rule_limit(rule: str, attr: str, missing: float) -> dict[str, float]:
        out = {}
        for k, p in protocols.items():
            r = next((x for x in p.reading_rules if x.name == rule and x.enabled), None)
            value = getattr(r, attr) if r is not None else None
            out[k] = missing if value is None else value
        return out

    columns = {
        **{
            f: {k: getattr(p.monitoring, f) for k, p in protocols.items()}
            for f in (
                "predose_reading_within_min",
                "reading_near_min",
                "reading_near_tolerance_min",
                "reading_before_discharge_within_min",
                "max_gap_during_infusion_min",
                "max_reading_gap_min",
                "min_observation_min",
                "discharge_bp_within_pct_of_baseline",
            )
        },
        "predose_sbp_over": rule_limit("predose_bp", "sbp_over", np.inf),
        "predose_dbp_over": rule_limit("predose_bp", "dbp_over", np.inf),
        "hr_over": rule_limit("heart_rate_high", "hr_over", np.inf),
        "spo2_under": rule_limit("spo2_low", "spo2_under", -np.inf),
    }
    return pd.DataFrame(
        {name: rules.per_key(keys, values).astype(float) for name, values in columns.items()}, index=keys.index
    )


def monitoring_compliance(
    sessions: pd.DataFrame,
    readings: pd.DataFrame,
    metrics: pd.DataFrame,
    dissociation: pd.DataFrame,
    rules: SafetyRules,
) -> pd.DataFrame:
    """Per staged session (indexed by session_id): the checks, their numbers and `monitoring_compliant`.

    `sessions` from `vital_readings.session_frame`, `readings` from `prepare_readings`, `metrics` from
    `session_metrics.vital_sign_metrics`, `dissociation` from `dissociation.session_dissociation`.
    """
    s = sessions.set_index("session_id")
    limits = _limits(rules, s["rules_key"])
    m = metrics.reindex(s.index)
    out = pd.DataFrame(index=s.index)
    out["observation_min"] = s["discharge_min"]
    out["predose_bp_recorded"] = m["baseline_minutes_from_start"] >= -limits["predose_reading_within_min"]

    post = readings.loc[readings["is_post_dose"] & readings["session_id"].isin(s.index)]
    post = post.join(s[["infusion_end_min", "discharge_min"]], on="session_id")
    post = post.loc[post["minutes_from_start"] <= post["discharge_min"]]
    lim = limits.reindex(post["session_id"].to_numpy()).set_index(post.index)
    near = (post["minutes_from_start"] - lim["reading_near_min"]).abs() <= lim["reading_near_tolerance_min"]
    out["reading_near_40_min"] = near.groupby(post["session_id"]).any().reindex(s.index, fill_value=False)
    last = post.groupby("session_id")["minutes_from_start"].max().reindex(s.index)
    out["reading_before_discharge"] = last >= s["discharge_min"] - limits["reading_before_discharge_within_min"]

    previous = post.groupby("session_id")["minutes_from_start"].shift().fillna(0.0)
    gap = post["minutes_from_start"] - previous
    during = previous < post["infusion_end_min"]
    out["max_gap_min"] = gap.groupby(post["session_id"]).max().reindex(s.index)
    out["max_gap_during_infusion_min"] = gap.where(during).groupby(post["session_id"]).max().reindex(s.index)
    has_post = out["max_gap_min"].notna()
    out["cadence_overall_met"] = has_post & (out["max_gap_min"] <= limits["max_reading_gap_min"])
    out["cadence_during_infusion_met"] = has_post & ~(
        out["max_gap_during_infusion_min"] > limits["max_gap_during_infusion_min"]
    )
    required = limits["min_observation_min"]
    met = s["discharge_min"] >= required
    out["min_observation_met"] = pd.array(np.where(required.isna(), pd.NA, met), dtype="boolean")

    out["ready_for_discharge_min"] = _ready_for_discharge(post, lim, m, dissociation.reindex(s.index))
    out["discharged_when_ready"] = out["ready_for_discharge_min"] <= s["discharge_min"]
    out["minutes_discharged_after_ready"] = s["discharge_min"] - out["ready_for_discharge_min"]

    applicable = out[CHECKS].astype("boolean")
    out["monitoring_compliant"] = applicable.fillna(True).all(axis=1) & (m["readings"].fillna(0) > 0)
    for check in CHECKS:
        if check != "min_observation_met":
            out[check] = out[check].fillna(False).astype(bool)
    out["monitoring_compliant"] = out["monitoring_compliant"].astype(bool)
    return out


def _ready_for_discharge(
    post: pd.DataFrame, lim: pd.DataFrame, metrics: pd.DataFrame, dissociation: pd.DataFrame
) -> pd.Series:
    base = metrics.reindex(post["session_id"].to_numpy())
    within = 1 + lim["discharge_bp_within_pct_of_baseline"].to_numpy() / 100
    sbp_ok_to = np.fmax(base["baseline_sbp_mmhg"].to_numpy() * within, lim["predose_sbp_over"].to_numpy())
    dbp_ok_to = np.fmax(base["baseline_dbp_mmhg"].to_numpy() * within, lim["predose_dbp_over"].to_numpy())
    acceptable = (
        (post["sbp_mmhg"].to_numpy() <= sbp_ok_to)
        & (post["dbp_mmhg"].to_numpy() <= dbp_ok_to)
        & ~(post["hr_bpm"].to_numpy() > lim["hr_over"].to_numpy())
        & ~(post["spo2_pct"].to_numpy() < lim["spo2_under"].to_numpy())
    )
    frame = pd.DataFrame(
        {
            "session_id": post["session_id"].to_numpy(),
            "minute": post["minutes_from_start"].to_numpy(),
            "end": post["infusion_end_min"].to_numpy(),
            "ok": acceptable,
        }
    )
    last_bad = frame.loc[~frame["ok"]].groupby("session_id")["minute"].max()
    frame["last_bad"] = frame["session_id"].map(last_bad).fillna(-np.inf)
    frame["earliest"] = np.fmax(frame["end"].to_numpy(), lim["reading_near_min"].to_numpy())
    ready = frame.loc[(frame["minute"] >= frame["earliest"]) & (frame["minute"] > frame["last_bad"])]
    ready_min = ready.groupby("session_id")["minute"].min().reindex(dissociation.index)
    # Dissociated at the peak: not known to be resolved before a discharge rating that shows it resolved
    # (a missing or incomplete discharge rating leaves it unresolved: not ready).
    at_peak = dissociation["dissociation_at_peak"].fillna(False).astype(bool)
    resolved_at = dissociation["cadss_discharge_minutes_from_start"].where(dissociation["cadss_discharge"].notna())
    later = np.fmax(ready_min, resolved_at).where(ready_min.notna())
    ready_min = ready_min.where(~at_peak, later.where(resolved_at.notna()))
    return ready_min.where(~dissociation["dissociation_at_discharge"].fillna(False).astype(bool))
