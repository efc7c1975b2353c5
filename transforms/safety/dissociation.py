"""Dissociation per session from clinician-rated CADSS (REDCap): at its peak and at discharge.

CADSS > `dissociation.cadss_over` (4, DOMAIN.md) counts as dissociation. The peak is the highest complete
rating of the session (the ~40 min rating in practice); the discharge rating is the one at the protocol's
`discharge_timepoint`. A discharge rating that is missing or incomplete leaves the discharge state unknown
(`dissociation_discharge_unknown`): never read as "resolved".
"""

from __future__ import annotations

import pandas as pd

from transforms.safety.rule_set import SafetyRules

CADSS = "cadss"


def cadss_ratings(clinician_ratings: pd.DataFrame) -> pd.DataFrame:
    """CADSS ratings, one per (session, timepoint): the latest when a rating was re-sent."""
    columns = ["session_id", "timepoint", "rated_at", "minutes_from_start", "total_score", "is_complete"]
    cadss = clinician_ratings.loc[clinician_ratings["instrument"] == CADSS, columns]
    cadss = cadss.sort_values(["session_id", "timepoint", "rated_at"], kind="stable")
    return cadss.drop_duplicates(["session_id", "timepoint"], keep="last").reset_index(drop=True)


def session_dissociation(ratings: pd.DataFrame, rules_keys: pd.Series, rules: SafetyRules) -> pd.DataFrame:
    """Per session (indexed by session_id): peak and discharge CADSS and their flags.

    `ratings` from `cadss_ratings`; `rules_keys` maps session_id -> rules key (categorical) for every session
    to report, so sessions without any rating appear too (discharge state unknown).
    """
    protocols = rules.all_protocols()
    over = pd.Series(
        rules.per_key(rules_keys, {k: p.dissociation.cadss_over for k, p in protocols.items()}), index=rules_keys.index
    ).astype(float)
    discharge_tp = pd.Series(
        rules.per_key(rules_keys, {k: p.dissociation.discharge_timepoint for k, p in protocols.items()}),
        index=rules_keys.index,
    )
    complete = ratings.loc[ratings["is_complete"].astype(bool) & ratings["total_score"].notna()]
    peak = (
        complete.sort_values(["session_id", "total_score", "rated_at"], ascending=[True, False, True], kind="stable")
        .drop_duplicates("session_id")
        .set_index("session_id")
    )
    want = ratings["timepoint"].astype(object).to_numpy() == discharge_tp.reindex(ratings["session_id"]).to_numpy()
    discharge = ratings.loc[want].set_index("session_id")
    result = pd.DataFrame(index=rules_keys.index)
    result["cadss_ratings"] = ratings.groupby("session_id").size().reindex(result.index, fill_value=0).astype(int)
    result["cadss_peak"] = peak["total_score"].reindex(result.index)
    result["cadss_peak_timepoint"] = peak["timepoint"].reindex(result.index).astype(object)
    result["cadss_discharge"] = (
        discharge["total_score"].where(discharge["is_complete"].astype(bool)).reindex(result.index)
    )
    result["cadss_discharge_minutes_from_start"] = discharge["minutes_from_start"].reindex(result.index)
    result["dissociation_at_peak"] = result["cadss_peak"] > over
    result["dissociation_at_discharge"] = result["cadss_discharge"] > over
    result["dissociation_discharge_unknown"] = result["cadss_discharge"].isna()
    result["cadss_over"] = over
    result.index.name = "session_id"
    return result.astype({"dissociation_at_peak": bool, "dissociation_at_discharge": bool})
