"""Efficacy context: PHQ-9 trajectories over the course, response and remission (DOMAIN.md Questionnaires).

Baseline = the patient's complete PHQ-9 before infusion 1. Response = a drop of at least 50 % from baseline;
remission = total < 5. Two read-outs per patient: `after_induction` (the PHQ-9 before infusion
induction_infusions + 1 of the protocol: 6 + 1 for IV depression, 8 + 1 esketamine) and `last_assessment`
(the latest complete PHQ-9 after baseline). Patients whose first infusion is not in the data (their course
began before the staged history) have no baseline: counted apart, never guessed.
`item9_worsened`: item 9 at the read-out higher than at baseline (DOMAIN.md: ~6 % report more ideation).
Trajectories: PHQ-9 totals by infusion number (1..12, "13+") per protocol and the patient's outcome class at
their last assessment (remission, response, no_response, no_follow_up, no_baseline).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transforms.safety.dissociation_trends import infusion_label
from transforms.safety.distribution import quantile_columns

OUTCOME_COLUMNS = [
    "clinic_id",
    "protocol",
    "readout",
    "patients",
    "patients_with_baseline",
    "patients_assessed",
    "responders",
    "remitters",
    "item9_worsened",
]
TRAJECTORY_COLUMNS = [
    "protocol",
    "outcome_class",
    "infusion_label",
    "infusion_order",
    "responses",
    "patients",
    "mean",
    "median",
    "p25",
    "p75",
]


def phq9_scores(responses: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """Complete PHQ-9 totals with the infusion they preceded (one per session: the latest)."""
    context = sessions[["session_id", "clinic_id", "protocol", "infusion_number"]]
    phq9 = responses.loc[(responses["instrument"] == "phq9") & responses["total_score"].notna()]
    phq9 = phq9[["session_id", "patient_id", "authored_at", "total_score", "item9_score"]].merge(
        context, on="session_id", how="inner"
    )
    phq9 = phq9.sort_values(["session_id", "authored_at"], kind="stable").drop_duplicates("session_id", keep="last")
    return phq9.sort_values(["patient_id", "infusion_number"], kind="stable").reset_index(drop=True)


def patient_outcomes(scores: pd.DataFrame, induction: dict[str, int]) -> pd.DataFrame:
    """Per patient: baseline, after-induction and last read-outs with response / remission / item-9 worsening.

    `induction`: protocol -> induction infusions (unknown protocols use "default").
    """
    patients = scores.groupby("patient_id", sort=True).agg(
        clinic_id=("clinic_id", "first"), protocol=("protocol", "first")
    )
    base = scores.loc[scores["infusion_number"] == 1].drop_duplicates("patient_id").set_index("patient_id")
    patients["baseline"] = base["total_score"]
    patients["baseline_item9"] = base["item9_score"]
    after_n = scores["protocol"].map(lambda p: induction.get(p, induction["default"]) + 1)
    after = scores.loc[scores["infusion_number"] == after_n].drop_duplicates("patient_id").set_index("patient_id")
    later = scores.loc[scores["infusion_number"] > 1].drop_duplicates("patient_id", keep="last").set_index("patient_id")
    for readout, picked in (("after_induction", after), ("last_assessment", later)):
        patients[f"{readout}_total"] = picked["total_score"]
        patients[f"{readout}_item9"] = picked["item9_score"]
    return patients


def _classify(total: pd.Series, baseline: pd.Series) -> tuple[pd.Series, pd.Series]:
    assessed = total.notna() & baseline.notna()
    return assessed & (total <= 0.5 * baseline), assessed & (total < 5)


def phq9_outcomes(patients: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for readout in ("after_induction", "last_assessment"):
        total, item9 = patients[f"{readout}_total"], patients[f"{readout}_item9"]
        response, remission = _classify(total, patients["baseline"])
        assessed = total.notna() & patients["baseline"].notna()
        frame = patients.assign(
            readout=readout,
            has_baseline=patients["baseline"].notna(),
            assessed=assessed,
            response=response,
            remission=remission,
            worsened=assessed & (item9 > patients["baseline_item9"]),
        )
        rows.append(
            frame.groupby(["clinic_id", "protocol", "readout"])
            .agg(
                patients=("has_baseline", "size"),
                patients_with_baseline=("has_baseline", "sum"),
                patients_assessed=("assessed", "sum"),
                responders=("response", "sum"),
                remitters=("remission", "sum"),
                item9_worsened=("worsened", "sum"),
            )
            .reset_index()
        )
    if not rows:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    result = pd.concat(rows, ignore_index=True)
    return result.sort_values(["clinic_id", "protocol", "readout"]).reset_index(drop=True)[OUTCOME_COLUMNS]


def phq9_trajectories(scores: pd.DataFrame, patients: pd.DataFrame, max_number: int) -> pd.DataFrame:
    response, remission = _classify(patients["last_assessment_total"], patients["baseline"])
    outcome = np.select(
        [patients["baseline"].isna(), patients["last_assessment_total"].isna(), remission, response],
        ["no_baseline", "no_follow_up", "remission", "response"],
        default="no_response",
    )
    frame = scores.assign(outcome_class=scores["patient_id"].map(pd.Series(outcome, index=patients.index)))
    frame["infusion_label"], frame["infusion_order"] = infusion_label(frame["infusion_number"], max_number)
    keys = ["protocol", "outcome_class", "infusion_label", "infusion_order"]
    grouped = frame.groupby(keys, sort=True)
    stats = grouped["total_score"].agg(responses="size", mean="mean", median="median")
    stats["patients"] = grouped["patient_id"].nunique()
    stats = stats.join(quantile_columns(grouped["total_score"], {"p25": 0.25, "p75": 0.75}))
    result = stats.reset_index().sort_values(["protocol", "outcome_class", "infusion_order"], kind="stable")
    return result.reset_index(drop=True)[TRAJECTORY_COLUMNS]
