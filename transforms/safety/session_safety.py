"""One row per infusion session with everything the safety rules found: the internal session mart.

Staged sessions, plus sessions known only from readings or ratings (their EHR row is still in quarantine:
`session_staged` False, protocol "unknown", evaluated with the default rules) so that no breach is hidden.
"""

from __future__ import annotations

import pandas as pd

from transforms.safety.rule_set import SafetyRules, infusion_bucket

SESSION_COLUMNS = [
    "session_id",
    "patient_id",
    "clinic_id",
    "protocol",
    "infusion_number",
    "is_booster",
    "status",
    "dose_mg_per_kg",
    "dose_mg",
    "started_at",
    "infusion_end_min",
    "discharge_min",
]


def session_safety(
    sessions: pd.DataFrame,
    orphans: pd.DataFrame,
    metrics: pd.DataFrame,
    grades: pd.DataFrame,
    dissociation: pd.DataFrame,
    compliance: pd.DataFrame,
    breaches: pd.DataFrame,
    outcomes: pd.DataFrame,
    strata: pd.DataFrame,
    rules: SafetyRules,
    rule_order: list[str],
) -> pd.DataFrame:
    """`orphans`: session_id, patient_id, clinic_id of sessions with readings or ratings but no staged EHR row."""
    staged = sessions[[c for c in SESSION_COLUMNS if c in sessions]].copy()
    staged["session_staged"] = True
    if not orphans.empty:
        staged = pd.concat([staged, orphans.assign(protocol="unknown", session_staged=False)], ignore_index=True)
    frame = staged.set_index("session_id")
    frame["ctcae_version"] = frame["protocol"].map(lambda p: rules.for_protocol(p).ctcae_version)
    frame["infusion_number"] = frame["infusion_number"].astype("Int64")
    frame["infusion_bucket"] = infusion_bucket(frame["infusion_number"], rules.reporting.infusion_buckets)
    frame = frame.join(metrics).join(grades).join(dissociation.drop(columns=["cadss_over"], errors="ignore"))
    frame = frame.join(compliance.drop(columns=["observation_min"], errors="ignore"))
    frame["hypertension_ctcae_grade"] = (
        frame["ctcae_v5_hypertension_grade"]
        .where(frame["ctcae_version"] != "6.0", frame["ctcae_v6_hypertension_grade"])
        .astype("Int64")
    )
    for rule in rule_order:
        hit = set(breaches.loc[breaches["rule"] == rule, "session_id"])
        frame[f"breach_{rule}"] = frame.index.isin(list(hit))
    frame["any_post_dose_breach"] = frame.index.isin(
        list(set(breaches.loc[breaches["phase"] == "post_dose", "session_id"]))
    )
    frame = frame.join(outcomes.set_index("session_id")[["ae_count", "any_ae", "severe_event"]])
    frame = frame.join(strata, on="patient_id")
    for column in ("readings", "predose_readings", "postdose_readings", "cadss_ratings", "ae_count"):
        frame[column] = frame[column].fillna(0).astype(int)
    for column in ("any_ae", "severe_event", "monitoring_compliant", *[c for c in strata if c.startswith("on_")]):
        frame[column] = frame[column].fillna(False).astype(bool)
    return frame.reset_index().sort_values("session_id", kind="stable").reset_index(drop=True)
