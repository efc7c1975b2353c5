"""Reading-rule threshold breaches: which rule each session broke, and the reading that broke it first.

A breach is a fact about readings (DOMAIN.md "threshold breach"), not a symptomatic event: it is listed
here apart from the adverse events. Each breach row gives where the rule's run of readings started
(`first_minutes_from_start`, the reading the ground truth names) and the reading that completed it
(`confirmed_minutes_from_start`: for "two readings in a row" the second one, when the rule actually fires).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transforms.safety.reading_runs import run_positions
from transforms.safety.rule_set import PRE_DOSE, ReadingRule, SafetyRules

LIMITS = {"sbp_over": "sbp_mmhg", "dbp_over": "dbp_mmhg", "hr_over": "hr_bpm", "spo2_under": "spo2_pct"}
BREACH_COLUMNS = [
    "session_id",
    "rule",
    "phase",
    "rules_key",
    "session_staged",
    "first_observed_at",
    "first_minutes_from_start",
    "confirmed_observed_at",
    "confirmed_minutes_from_start",
    "value",
    "sbp_mmhg",
    "dbp_mmhg",
    "hr_bpm",
    "spo2_pct",
    "run_readings",
    "breaching_readings",
    "detected_term",
]


def rule_names(rules: SafetyRules) -> list[str]:
    """Every reading rule of any protocol, in configuration order."""
    names: list[str] = []
    for protocol in rules.all_protocols().values():
        names += [r.name for r in protocol.reading_rules if r.name not in names]
    return names


def _per_reading(readings: pd.DataFrame, rules: SafetyRules, name: str) -> dict[str, pd.Series]:
    """The rule's parameters for each reading, from its protocol (NaN limits where the rule is off)."""
    by_key: dict[str, ReadingRule | None] = {}
    for key, protocol in rules.all_protocols().items():
        rule = next((r for r in protocol.reading_rules if r.name == name), None)
        by_key[key] = rule if rule is not None and rule.enabled else None
    keys = readings["rules_key"]

    def param(attr: str, missing: float = np.nan) -> pd.Series:
        values = {
            k: getattr(r, attr) if r is not None and getattr(r, attr) is not None else missing
            for k, r in by_key.items()
        }
        return pd.Series(rules.per_key(keys, values).astype(float), index=readings.index)

    def text(attr: str) -> pd.Series:
        return pd.Series(
            rules.per_key(keys, {k: getattr(r, attr) if r else None for k, r in by_key.items()}),
            index=readings.index,
            dtype=object,
        )

    return {
        **{limit: param(limit) for limit in LIMITS},
        "consecutive": param("consecutive", 1.0),
        "max_minutes_apart": param("max_minutes_apart"),
        "phase": text("phase"),
        "detected_term": text("detected_term"),
    }


def _meets(readings: pd.DataFrame, params: dict[str, pd.Series]) -> pd.Series:
    meets = pd.Series(False, index=readings.index)
    for limit, column in LIMITS.items():
        values = readings[column]
        meets |= (values < params[limit]) if limit == "spo2_under" else (values > params[limit])
    return meets.fillna(False).astype(bool)


def _value_text(frame: pd.DataFrame, name: str, rules: SafetyRules) -> pd.Series:
    """ "185/112" for a BP rule, "121" for heart rate, "88" for SpO2 (as the ground truth writes them)."""
    rule = next(r for p in rules.all_protocols().values() for r in p.reading_rules if r.name == name)

    def text(column: str) -> pd.Series:
        return frame[column].map(lambda v: "" if pd.isna(v) else f"{v:g}")

    if rule.sbp_over is not None or rule.dbp_over is not None:
        return text("sbp_mmhg") + "/" + text("dbp_mmhg")
    return text("hr_bpm" if rule.hr_over is not None else "spo2_pct")


def reading_rule_breaches(readings: pd.DataFrame, rules: SafetyRules) -> pd.DataFrame:
    """One row per (session, rule broken), from `vital_readings.prepare_readings` output."""
    found: list[pd.DataFrame] = []
    for name in rule_names(rules):
        params = _per_reading(readings, rules, name)
        in_phase = np.where(params["phase"] == PRE_DOSE, readings["is_baseline"], readings["is_post_dose"])
        in_phase &= params["phase"].notna().to_numpy()
        subset = readings.loc[in_phase]
        if subset.empty:
            continue
        sub_params = {k: v.loc[subset.index] for k, v in params.items()}
        meets = _meets(subset, sub_params)
        run_id, position = run_positions(
            subset["session_id"], meets, subset["minutes_from_start"], sub_params["max_minutes_apart"]
        )
        confirmed = meets & (position + 1 >= sub_params["consecutive"])
        hits = subset.loc[confirmed].assign(run=run_id[confirmed]).groupby("session_id", sort=False).head(1)
        if hits.empty:
            continue
        run_first = subset.assign(run=run_id).loc[meets].groupby("run").head(1).set_index("run")
        run_size = run_id[meets].value_counts()
        start = run_first.loc[hits["run"].to_numpy()].reset_index(drop=True)
        breaching = meets.groupby(subset["session_id"]).sum()
        found.append(
            pd.DataFrame(
                {
                    "session_id": hits["session_id"].to_numpy(),
                    "rule": name,
                    "phase": sub_params["phase"].loc[hits.index].to_numpy(),
                    "rules_key": hits["rules_key"].to_numpy(),
                    "session_staged": hits["session_staged"].to_numpy(),
                    "first_observed_at": start["observed_at"].to_numpy(),
                    "first_minutes_from_start": start["minutes_from_start"].to_numpy(),
                    "confirmed_observed_at": hits["observed_at"].to_numpy(),
                    "confirmed_minutes_from_start": hits["minutes_from_start"].to_numpy(),
                    "value": _value_text(start, name, rules).to_numpy(),
                    **{c: start[c].to_numpy() for c in LIMITS.values()},
                    "run_readings": run_size.loc[hits["run"].to_numpy()].to_numpy(),
                    "breaching_readings": breaching.loc[hits["session_id"]].to_numpy(),
                    "detected_term": sub_params["detected_term"].loc[hits.index].to_numpy(),
                }
            )
        )
    if not found:
        return empty_breaches()
    breaches = pd.concat(found, ignore_index=True)
    breaches["first_observed_at"] = pd.to_datetime(breaches["first_observed_at"], utc=True)
    breaches["confirmed_observed_at"] = pd.to_datetime(breaches["confirmed_observed_at"], utc=True)
    order = {name: i for i, name in enumerate(rule_names(rules))}
    breaches = breaches.sort_values(
        ["session_id", "rule"], key=lambda s: s.map(order) if s.name == "rule" else s, kind="stable"
    )
    return breaches[BREACH_COLUMNS].reset_index(drop=True)


def empty_breaches() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in BREACH_COLUMNS})
    for column in ("first_observed_at", "confirmed_observed_at"):
        frame[column] = pd.Series(dtype="datetime64[us, UTC]")
    numeric = ["first_minutes_from_start", "confirmed_minutes_from_start", *LIMITS.values()]
    for column in [*numeric, "run_readings", "breaching_readings"]:
        frame[column] = pd.Series(dtype=float)
    frame["session_staged"] = pd.Series(dtype=bool)
    return frame
