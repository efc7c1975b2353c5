"""One adverse-event table from three origins, with severity, seriousness, relatedness, action and outcome
kept as separate fields (DOMAIN.md "Severity and seriousness are different fields").

Origins:
- `staff_recorded`: events staff typed into the EHR, as recorded (their own CTCAE grade and version);
- `vitals_detected`: a reading rule with a `detected_term` broke (severe BP, sustained tachycardia, SpO2 low).
  One event per session and term, at the earliest confirming reading. Hypertension is graded from the
  readings under the protocol's CTCAE version (`ctcae_hypertension`); other detected events are not graded
  (CTCAE grades them by symptoms and intervention, which readings do not show). Seriousness, relatedness,
  action and outcome are a clinician's call: `not_assessed` / `not_recorded`, never guessed;
- `questionnaire_flagged`: PHQ-9 item 9 / C-SSRS high risk -> `suicidal_ideation`; an unanswered suicidality
  question -> `suicidality_unknown` (kept visible, but it is not an adverse event: out of incidence and SPC).
  Only a treatment-emergent flag (new or worse than the patient's baseline, see `suicidality`) counts in
  incidence: ideation present before treatment is the disease, not an adverse event.

A detected or flagged event of the same term and session as a staff-recorded one points to it
(`matched_staff_ae_id`) and is left out of incidence so the cube never counts one event twice; an
unmatched one counts: it is an event staff did not record. `counts_in_incidence` also needs the session's
exposure (a staged session): events of sessions still in quarantine are listed, not rated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transforms.safety import ae_terms
from transforms.safety.rule_set import SafetyRules, infusion_bucket
from transforms.safety.suicidality import POSITIVE

STAFF, VITALS, QUESTIONNAIRE = "staff_recorded", "vitals_detected", "questionnaire_flagged"
NOT_ASSESSED, NOT_RECORDED = "not_assessed", "not_recorded"
SESSION_CONTEXT = ["patient_id", "clinic_id", "protocol", "infusion_number", "is_booster", "started_at", "rules_key"]
# The columns every origin provides (missing ones are filled), with their types.
PART_COLUMNS = {
    "ae_key": object,
    "origin": object,
    "source_rule": object,
    "session_id": object,
    "patient_id": object,
    "clinic_id_recorded": object,
    "term": object,
    "term_label": object,
    "code_system": object,
    "code": object,
    "onset_at": "datetime64[us, UTC]",
    "treatment_emergent": "boolean",
    "ctcae_grade": "Int64",
    "ctcae_version": object,
    "serious": "boolean",
    "seriousness_criteria": object,
    "relatedness": object,
    "action_taken": object,
    "outcome": object,
}
AE_COLUMNS = [
    "ae_key",
    "origin",
    "source_rule",
    "session_id",
    "patient_id",
    "clinic_id",
    "protocol",
    "infusion_number",
    "infusion_bucket",
    "is_booster",
    "session_staged",
    "term",
    "term_label",
    "body_system",
    "code_system",
    "code",
    "onset_minutes_from_start",
    "ctcae_grade",
    "ctcae_version",
    "severity",
    "serious",
    "seriousness",
    "seriousness_criteria",
    "relatedness",
    "action_taken",
    "outcome",
    "on_benzodiazepine",
    "on_stimulant",
    "on_maoi",
    "on_opioid",
    "conmed_stratum",
    "treatment_emergent",
    "matched_staff_ae_id",
    "counts_in_incidence",
    "severe_event",
]


def staff_recorded_events(adverse_events: pd.DataFrame) -> pd.DataFrame:
    """Staged EHR adverse events in the unified shape (context columns are joined later)."""
    ae = adverse_events
    serious = pd.array(ae["serious"].astype("Int64").astype("boolean"), dtype="boolean")
    return pd.DataFrame(
        {
            "ae_key": ae["ae_id"].astype(str).to_numpy(),
            "origin": STAFF,
            "source_rule": "",
            "session_id": ae["session_id"].to_numpy(),
            "patient_id": ae["patient_id"].to_numpy(),
            "clinic_id_recorded": ae["clinic_id"].to_numpy(),
            "term": ae["term"].astype(str).to_numpy(),
            "term_label": ae["term_label"].astype(str).to_numpy(),
            "code_system": ae["code_system"].astype(str).to_numpy(),
            "code": ae["code"].astype(str).to_numpy(),
            "onset_at": ae["onset_at"].to_numpy(),
            "ctcae_grade": ae["ctcae_grade"].astype("Int64").to_numpy(),
            "ctcae_version": ae["ctcae_version"].astype(str).to_numpy(),
            "serious": serious,
            "seriousness_criteria": ae["seriousness_criteria"].fillna("").astype(str).to_numpy(),
            "relatedness": ae["relatedness"].astype(str).to_numpy(),
            "action_taken": ae["action_taken"].astype(str).to_numpy(),
            "outcome": ae["outcome"].astype(str).to_numpy(),
        }
    )


def _code(terms: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    snomed = terms.map(ae_terms.load_term_map()["snomed_ct"]).fillna("")
    system = np.where(snomed != "", "SNOMED", "LOCAL")
    return system, np.where(snomed != "", snomed, terms)


def vitals_detected_events(
    breaches: pd.DataFrame, grades: pd.DataFrame, session_versions: pd.Series, rule_order: list[str]
) -> pd.DataFrame:
    """One event per (session, detected term) from the breaches of rules that name a `detected_term`.

    `grades`: per session `ctcae_v5_hypertension_grade` / `ctcae_v6_hypertension_grade`;
    `session_versions`: session_id -> the protocol's CTCAE version ("5.0" / "6.0").
    """
    detected = breaches.loc[breaches["detected_term"].notna()].copy()
    if detected.empty:
        return pd.DataFrame(columns=["ae_key", "origin"])
    detected["rule_rank"] = detected["rule"].map({r: i for i, r in enumerate(rule_order)})
    detected = detected.sort_values(["session_id", "detected_term", "confirmed_minutes_from_start", "rule_rank"])
    rules_hit = detected.groupby(["session_id", "detected_term"], sort=False)["rule"].agg(",".join)
    first = detected.drop_duplicates(["session_id", "detected_term"]).set_index(["session_id", "detected_term"])
    first["source_rule"] = rules_hit
    first = first.reset_index()
    terms = first["detected_term"].astype(str)
    version = first["session_id"].map(session_versions).fillna("5.0").astype(str)
    g = grades.reindex(first["session_id"].to_numpy())
    grade = np.where(version == "6.0", g["ctcae_v6_hypertension_grade"], g["ctcae_v5_hypertension_grade"])
    grade = pd.array(np.where((terms == "hypertension").to_numpy() & (grade > 0), grade, pd.NA), dtype="Int64")
    system, code = _code(terms)
    return pd.DataFrame(
        {
            "ae_key": (first["session_id"] + ":vitals:" + terms).to_numpy(),
            "origin": VITALS,
            "source_rule": first["source_rule"].to_numpy(),
            "session_id": first["session_id"].to_numpy(),
            "term": terms.to_numpy(),
            "term_label": ae_terms.term_label(terms).to_numpy(),
            "code_system": system,
            "code": code,
            "onset_at": first["confirmed_observed_at"].to_numpy(),
            "ctcae_grade": grade,
            "ctcae_version": np.where(pd.isna(grade), "", version),
            "serious": pd.array([pd.NA] * len(first), dtype="boolean"),
            "seriousness_criteria": "",
            "relatedness": NOT_ASSESSED,
            "action_taken": NOT_RECORDED,
            "outcome": NOT_RECORDED,
        }
    )


def questionnaire_flagged_events(flags: pd.DataFrame) -> pd.DataFrame:
    """One event per (session, term): suicidal ideation (positive flags) or suicidality unknown."""
    if flags.empty:
        return pd.DataFrame(columns=["ae_key", "origin"])
    f = flags.copy()
    f["term"] = np.where(f["flag_kind"] == POSITIVE, ae_terms.SUICIDAL_IDEATION, ae_terms.SUICIDALITY_UNKNOWN)
    # A questionnaire without a session is grouped by its patient (still listed, no exposure to rate it by).
    f["group"] = f["session_id"].fillna("patient:" + f["patient_id"].astype(str))
    f = f.sort_values(["group", "term", "authored_at", "rule"], kind="stable")
    distinct_rules = f[["group", "term", "rule"]].drop_duplicates().sort_values(["group", "term", "rule"])
    rules_hit = distinct_rules.groupby(["group", "term"], sort=False)["rule"].agg(",".join)
    # Treatment-emergent when any of the session's flags is; unknown only when none is known.
    emergent = f["treatment_emergent"].astype("Float64").groupby([f["group"], f["term"]], sort=False).max()
    emergent = emergent.astype("boolean")
    first = f.drop_duplicates(["group", "term"]).set_index(["group", "term"])
    first["source_rule"] = rules_hit
    first["treatment_emergent"] = emergent
    first = first.reset_index()
    terms = first["term"].astype(str)
    system, code = _code(terms)
    return pd.DataFrame(
        {
            "ae_key": (first["group"] + ":questionnaire:" + terms).to_numpy(),
            "origin": QUESTIONNAIRE,
            "source_rule": first["source_rule"].to_numpy(),
            "session_id": first["session_id"].to_numpy(),
            "patient_id": first["patient_id"].to_numpy(),
            "clinic_id_recorded": first["clinic_id"].to_numpy(),
            "term": terms.to_numpy(),
            "term_label": ae_terms.term_label(terms).to_numpy(),
            "code_system": system,
            "code": code,
            "onset_at": first["authored_at"].to_numpy(),
            "treatment_emergent": pd.array(first["treatment_emergent"].to_numpy(), dtype="boolean"),
            "ctcae_grade": pd.array([pd.NA] * len(first), dtype="Int64"),
            "ctcae_version": "",
            "serious": pd.array([pd.NA] * len(first), dtype="boolean"),
            "seriousness_criteria": "",
            "relatedness": NOT_ASSESSED,
            "action_taken": NOT_RECORDED,
            "outcome": NOT_RECORDED,
        }
    )


def unified_adverse_events(
    parts: list[pd.DataFrame],
    sessions: pd.DataFrame,
    strata: pd.DataFrame,
    severe_reading_rules: set[str],
    rules: SafetyRules,
) -> pd.DataFrame:
    """Join the three origins to their session, patient strata and body system; match and classify them.

    `sessions`: `vital_readings.session_frame` output; `strata`: `concomitant_medications.conmed_strata`.
    """
    present = [p for p in parts if not p.empty]
    events = pd.concat(present, ignore_index=True) if present else pd.DataFrame(index=pd.RangeIndex(0))
    for column, dtype in PART_COLUMNS.items():
        if column not in events:
            events[column] = pd.Series(
                pd.NA if dtype in ("Int64", "boolean") else np.nan, index=events.index, dtype=dtype
            )
    for column in ("session_id", "patient_id", "clinic_id_recorded", "term"):
        events[column] = events[column].astype(object)
    context = sessions.set_index("session_id")[SESSION_CONTEXT].add_prefix("session_")
    joined = events.join(context, on="session_id")
    # The session's patient and clinic win; an event whose session is not staged keeps its own.
    joined["patient_id"] = joined["session_patient_id"].astype(object).fillna(joined["patient_id"])
    joined["clinic_id"] = joined["session_clinic_id"].astype(object).fillna(joined["clinic_id_recorded"])
    joined = joined.rename(columns={f"session_{c}": c for c in SESSION_CONTEXT if c not in ("patient_id", "clinic_id")})
    joined["session_staged"] = joined["session_id"].isin(context.index)
    joined["protocol"] = joined["protocol"].fillna("unknown")
    joined["infusion_number"] = joined["infusion_number"].astype("Int64")
    joined["infusion_bucket"] = infusion_bucket(joined["infusion_number"], rules.reporting.infusion_buckets)
    joined["is_booster"] = joined["is_booster"].astype("boolean")
    joined["onset_minutes_from_start"] = (
        pd.to_datetime(joined["onset_at"], utc=True) - joined["started_at"]
    ).dt.total_seconds() / 60.0
    joined["body_system"] = ae_terms.body_system(joined["term"])
    joined = joined.join(strata, on="patient_id")
    for column in [c for c in strata.columns if c.startswith("on_")]:
        joined[column] = joined[column].fillna(False).astype(bool)
    joined["conmed_stratum"] = joined["conmed_stratum"].fillna("none")
    joined = _classify(joined, rules, severe_reading_rules)
    order = {STAFF: 0, VITALS: 1, QUESTIONNAIRE: 2}
    joined = joined.sort_values(
        ["session_id", "origin", "term", "ae_key"],
        key=lambda s: s.map(order) if s.name == "origin" else s,
        kind="stable",
        na_position="last",
    )
    return joined[AE_COLUMNS].reset_index(drop=True)


def _classify(events: pd.DataFrame, rules: SafetyRules, severe_reading_rules: set[str]) -> pd.DataFrame:
    staff = events.loc[events["origin"] == STAFF].sort_values("ae_key")
    staff_ids = staff.drop_duplicates(["session_id", "term"]).set_index(["session_id", "term"])["ae_key"]
    keys = pd.MultiIndex.from_arrays([events["session_id"], events["term"]])
    matched = pd.Series(staff_ids.reindex(keys).to_numpy(), index=events.index, dtype=object)
    events["matched_staff_ae_id"] = matched.where(events["origin"] != STAFF)
    # Staff-recorded and vitals-detected events happen in the session: treatment-emergent by construction.
    emergent = events["treatment_emergent"].astype("boolean")
    events["treatment_emergent"] = emergent.where(events["origin"] == QUESTIONNAIRE, True).astype("boolean")
    events["counts_in_incidence"] = (
        ((events["origin"] == STAFF) | events["matched_staff_ae_id"].isna())
        & events["treatment_emergent"].fillna(False).astype(bool)
        & (events["term"] != ae_terms.SUICIDALITY_UNKNOWN)
        & events["session_staged"]
    )
    grade = events["ctcae_grade"].astype("Int64")
    version = events["ctcae_version"].fillna("").astype(str)
    events["severity"] = np.where(grade.isna(), "not_graded", "v" + version + " G" + grade.astype(str))
    serious = events["serious"].astype("boolean")
    events["seriousness"] = np.where(
        serious.isna(), NOT_ASSESSED, np.where(serious.fillna(False), "serious", "non_serious")
    )
    severe = rules.reporting.severe_event
    by_grade = (grade >= severe.min_ctcae_grade).fillna(False) & ~events["term"].isin(severe.grade_exempt_terms)
    by_rule = events["source_rule"].fillna("").str.split(",").map(lambda r: bool(set(r) & severe_reading_rules))
    events["severe_event"] = (
        (serious.fillna(False) & severe.serious) | by_grade | (by_rule & (events["origin"] == VITALS))
    ).astype(bool) & (events["term"] != ae_terms.SUICIDALITY_UNKNOWN)
    events["serious"] = serious
    return events
