"""Build the safety marts from the staged tables: `build_marts(lake)`.

Reads the staged tables, runs the safety transforms (`transforms/safety/`) and writes each mart atomically to
`marts/<name>.parquet`, then `marts/_manifest.json` (mart names, rows, columns, audience, as-of time, rules
digest and data-quality figures). The manifest is written last: a reader that finds it finds every mart of
the same build. Deterministic: the same staged data (and pseudonym lookup) give the same bytes, so a rerun
changes nothing and the manifest has no build timestamp.

Audience: `internal` marts keep session and patient ids (for alerts and drill-down inside the lake);
`publication` marts have no identifiers, dates of care, names or free text and are what the dashboard may
show once small cells are suppressed (which is the publication step's job, on these raw counts).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from clinic_pipeline.lake import Lake
from clinic_pipeline.safety import staged_tables
from clinic_pipeline.safety.rules import load_rules
from transforms.safety import adverse_events as ae
from transforms.safety import (
    ae_terms,
    breaches,
    concomitant_medications,
    ctcae_hypertension,
    dissociation,
    dissociation_trends,
    funnel,
    incidence,
    listings,
    monitoring_compliance,
    phq9_outcomes,
    pseudonyms,
    session_metrics,
    session_outcomes,
    session_safety,
    session_summaries,
    spc,
    suicidality,
    vital_readings,
    vital_sign_curves,
)
from transforms.safety.rule_set import SafetyRules, infusion_bucket

log = logging.getLogger("clinic_pipeline.safety")

INTERNAL, PUBLICATION = "internal", "publication"
MARTS_DIR = "marts"
MANIFEST = "_manifest.json"
PSEUDONYMS = ("state", "pseudonyms.parquet")
MART_DOCS = {
    "session_safety": (
        INTERNAL,
        "one row per infusion session: vitals metrics, breaches, CTCAE grade, "
        "dissociation, monitoring compliance, AE outcome",
    ),
    "threshold_breaches": (INTERNAL, "one row per (session, reading rule broken)"),
    "adverse_events": (INTERNAL, "unified adverse events: staff-recorded, vitals-detected, questionnaire-flagged"),
    "suicidality_flags": (INTERNAL, "every positive or unknown PHQ-9 item 9 / C-SSRS answer, with ids"),
    "ae_incidence": (PUBLICATION, "incidence cube: per 100 infusions and per patient, numerator and denominator"),
    "ae_exposure": (PUBLICATION, "infusions and patients per exposure cell (denominators for re-aggregation)"),
    "spc_weekly": (PUBLICATION, "P chart (infusions with an AE) and U chart (AEs per 100 infusions) per week"),
    "spc_g_chart": (PUBLICATION, "G chart: infusions between severe events"),
    "funnel_clinics": (PUBLICATION, "clinics' AE proportions against volume with 95 % / 99.8 % limits"),
    "funnel_limits": (PUBLICATION, "the funnel's limit curves"),
    "bp_curves": (PUBLICATION, "SBP/DBP/HR/SpO2 by 5-min bin from the start of dosing, per protocol"),
    "bp_shift_table": (PUBLICATION, "sessions per baseline band x peak band"),
    "bp_shift_points": (PUBLICATION, "baseline vs peak BP per session, without identifiers"),
    "cadss_by_infusion": (PUBLICATION, "CADSS by infusion number and timepoint"),
    "phq9_trajectories": (PUBLICATION, "PHQ-9 by infusion number and outcome class"),
    "phq9_outcomes": (PUBLICATION, "PHQ-9 response and remission after induction and at the last assessment"),
    "breach_summary": (PUBLICATION, "sessions with each reading-rule breach, and breaches staff did not record"),
    "monitoring_compliance": (PUBLICATION, "sessions evaluated / passed per monitoring check"),
    "discharge_readiness": (PUBLICATION, "minutes to discharge readiness and observation time"),
    "serious_event_listing": (PUBLICATION, "serious adverse events: pseudonymous token, course day, infusion"),
    "suicidality_listing": (PUBLICATION, "suicidality flags: pseudonymous token, course day, infusion"),
    "rule_thresholds": (PUBLICATION, "the reading-rule thresholds per protocol (threshold bands on charts)"),
}


@dataclass
class MartsSummary:
    rows: dict[str, int] = field(default_factory=dict)
    manifest_path: Any = None
    as_of: str | None = None
    seconds: float = 0.0
    tokens_added: int = 0
    data_quality: dict[str, Any] = field(default_factory=dict)


def build_marts(lake: Lake, rules: SafetyRules | None = None) -> MartsSummary:
    """Read staged data, compute every mart, write them and the manifest (see module doc)."""
    started = time.perf_counter()
    rules = rules or load_rules()
    tables = {name: staged_tables.read_staged(lake, name) for name in staged_tables.SCHEMAS}
    lookup_path = lake.path(*PSEUDONYMS)
    lookup = pd.read_parquet(str(lookup_path)) if lookup_path.exists() else pd.DataFrame()
    marts, lookup, added, extra_quality = compute_marts(tables, rules, lookup)
    if added:
        lake.write_parquet(lookup_path, lookup)
    for name, frame in marts.items():
        lake.write_parquet(lake.path(MARTS_DIR, f"{name}.parquet"), frame)
    newest, per_table = staged_tables.as_of(tables)
    quality = staged_tables.data_quality(lake) | extra_quality
    manifest = {
        "as_of": None if newest is None else pd.Timestamp(newest).isoformat(),
        "as_of_by_table": per_table,
        "rules_digest": rules.digest,
        "data_quality": quality,
        "marts": [
            {
                "name": name,
                "file": f"{MARTS_DIR}/{name}.parquet",
                "audience": MART_DOCS[name][0],
                "description": MART_DOCS[name][1],
                "rows": len(frame),
                "columns": [{"name": str(c), "dtype": str(t)} for c, t in frame.dtypes.items()],
            }
            for name, frame in marts.items()
        ],
    }
    manifest_path = lake.path(MARTS_DIR, MANIFEST)
    lake.write_json(manifest_path, manifest)
    summary = MartsSummary(
        rows={n: len(f) for n, f in marts.items()},
        manifest_path=manifest_path,
        as_of=manifest["as_of"],
        seconds=time.perf_counter() - started,
        tokens_added=added,
        data_quality=quality,
    )
    log.info(
        "safety marts: %d marts, %d sessions, as of %s, %.1f s",
        len(marts),
        summary.rows.get("session_safety", 0),
        summary.as_of,
        summary.seconds,
    )
    return summary


def compute_marts(
    tables: dict[str, pd.DataFrame], rules: SafetyRules, lookup: pd.DataFrame
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, int, dict[str, Any]]:
    """Every mart from the staged tables (pure but for new pseudonym tokens): (marts, lookup, added, quality)."""
    rule_order = breaches.rule_names(rules)
    severe_rules = set(rules.reporting.severe_event.reading_rules)
    sessions = vital_readings.session_frame(
        tables["infusion_sessions"].drop_duplicates("session_id", keep="last"), rules
    )
    readings = vital_readings.prepare_readings(tables["vital_signs"], sessions)
    found = breaches.reading_rule_breaches(readings, rules)
    metrics = session_metrics.vital_sign_metrics(readings, rules)
    grades = ctcae_hypertension.hypertension_grades(readings, metrics)
    cadss = dissociation.cadss_ratings(tables["clinician_ratings"])
    # Sessions known only from readings or ratings (their EHR row is held in quarantine): default rules.
    orphans = sorted((set(readings["session_id"]) | set(cadss["session_id"])) - set(sessions["session_id"]))
    keys = pd.concat(
        [
            sessions.set_index("session_id")["rules_key"],
            rules.rule_key(pd.Series("unknown", index=pd.Index(orphans, name="session_id"), dtype=object)),
        ]
    )
    dissociated = dissociation.session_dissociation(cadss, keys, rules)
    compliance = monitoring_compliance.monitoring_compliance(sessions, readings, metrics, dissociated, rules)
    infusion_of = sessions.set_index("session_id")["infusion_number"]
    flags = suicidality.suicidality_flags(tables["questionnaire_responses"], keys, infusion_of, rules)

    patient_ids = pd.concat(
        [tables["patients"]["patient_id"], sessions["patient_id"], tables["questionnaire_responses"]["patient_id"]],
        ignore_index=True,
    )
    strata = concomitant_medications.conmed_strata(patient_ids, tables["concomitant_medications"])
    sessions["infusion_bucket"] = infusion_bucket(sessions["infusion_number"], rules.reporting.infusion_buckets)
    sessions["conmed_stratum"] = sessions["patient_id"].map(strata["conmed_stratum"]).fillna("none")
    versions = pd.Series(
        rules.per_key(keys, {k: p.ctcae_version for k, p in rules.all_protocols().items()}), index=keys.index
    )
    events = ae.unified_adverse_events(
        [
            ae.staff_recorded_events(tables["adverse_events"]),
            ae.vitals_detected_events(found, grades, versions, rule_order),
            ae.questionnaire_flagged_events(flags),
        ],
        sessions,
        strata,
        severe_rules,
        rules,
    )
    outcomes = session_outcomes.session_outcomes(sessions, events, found, severe_rules)
    per_session = session_safety.session_safety(
        sessions,
        orphan_context(tables, orphans),
        metrics,
        grades,
        dissociated,
        compliance,
        found,
        outcomes,
        strata,
        rules,
        rule_order,
    )

    lookup, added = pseudonyms.assign_tokens(
        lookup, sorted(set(events["patient_id"].dropna()) | set(flags["patient_id"].dropna()))
    )
    tokens = lookup.set_index("patient_id")["patient_token"]
    days = listings.course_days(sessions, tables["patients"], tables["clinics"])
    as_of, _ = staged_tables.as_of(tables)
    exposure = incidence.exposure(sessions)
    funnel_rows = funnel.funnel_clinics(outcomes, rules.reporting.funnel_z_inner, rules.reporting.funnel_z_outer)
    scores = phq9_outcomes.phq9_scores(tables["questionnaire_responses"], sessions)
    induction = {k: p.induction_infusions for k, p in rules.all_protocols().items()}
    patient_phq9 = phq9_outcomes.patient_outcomes(scores, induction)
    cadss_over = pd.Series(
        rules.per_key(keys, {k: p.dissociation.cadss_over for k, p in rules.all_protocols().items()}), index=keys.index
    )
    marts = {
        "session_safety": per_session,
        "threshold_breaches": found,
        "adverse_events": events,
        "suicidality_flags": flags,
        "ae_incidence": incidence.incidence_cube(events, exposure),
        "ae_exposure": exposure,
        "spc_weekly": spc.weekly_charts(outcomes, as_of, rules.reporting.spc_sigma, rules.reporting.spc_run_length),
        "spc_g_chart": spc.g_chart(outcomes, rules.reporting.spc_sigma, rules.reporting.spc_run_length),
        "funnel_clinics": funnel_rows,
        "funnel_limits": funnel.funnel_limits(
            funnel_rows, rules.reporting.funnel_z_inner, rules.reporting.funnel_z_outer
        ),
        "bp_curves": vital_sign_curves.vital_sign_curves(readings, sessions, rules.reporting.bp_curve_bin_min),
        "bp_shift_table": vital_sign_curves.bp_shift_table(per_session),
        "bp_shift_points": vital_sign_curves.bp_shift_points(per_session),
        "cadss_by_infusion": dissociation_trends.cadss_by_infusion(
            cadss, sessions, cadss_over, rules.reporting.cadss_max_infusion_number
        ),
        "phq9_trajectories": phq9_outcomes.phq9_trajectories(
            scores, patient_phq9, rules.reporting.cadss_max_infusion_number
        ),
        "phq9_outcomes": phq9_outcomes.phq9_outcomes(patient_phq9),
        "breach_summary": session_summaries.breach_summary(per_session, found, events, rule_order),
        "monitoring_compliance": session_summaries.compliance_summary(per_session),
        "discharge_readiness": session_summaries.discharge_readiness(per_session),
        "serious_event_listing": listings.serious_event_listing(events, tokens, days),
        "suicidality_listing": listings.suicidality_listing(flags, sessions, events, tokens, days),
        "rule_thresholds": rule_thresholds(rules),
    }
    quality = {
        "sessions_without_vital_signs": int((per_session["session_staged"] & (per_session["readings"] == 0)).sum()),
        "sessions_not_staged_with_readings": int((~per_session["session_staged"]).sum()),
        "events_without_staged_session": int((~events["session_staged"]).sum()),
        "unmapped_terms": sorted(set(events.loc[events["body_system"] == ae_terms.UNMAPPED_BODY_SYSTEM, "term"])),
    }
    return {name: _stable(frame) for name, frame in marts.items()}, lookup, added, quality


def orphan_context(tables: dict[str, pd.DataFrame], orphans: list[str]) -> pd.DataFrame:
    """Patient and clinic of sessions known only from their readings or ratings (both carry them)."""
    columns = ["session_id", "patient_id", "clinic_id"]
    known = pd.concat([tables["vital_signs"][columns], tables["clinician_ratings"][columns]], ignore_index=True)
    known = known.loc[known["session_id"].isin(orphans)].drop_duplicates("session_id")
    return known.sort_values("session_id").reset_index(drop=True)


def rule_thresholds(rules: SafetyRules) -> pd.DataFrame:
    """The reading-rule thresholds per protocol, for threshold bands on the dashboard's charts."""
    rows = [
        {
            "protocol": key,
            "rule": r.name,
            "phase": r.phase,
            "sbp_over": r.sbp_over,
            "dbp_over": r.dbp_over,
            "hr_over": r.hr_over,
            "spo2_under": r.spo2_under,
            "consecutive": r.consecutive,
            "ctcae_version": protocol.ctcae_version,
        }
        for key, protocol in rules.all_protocols().items()
        for r in protocol.reading_rules
        if r.enabled
    ]
    return pd.DataFrame(rows).astype({c: "float64" for c in ("sbp_over", "dbp_over", "hr_over", "spo2_under")})


def _stable(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet-friendly, reproducible columns: categoricals as strings, a fresh index."""
    out = frame.reset_index(drop=True).copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype(str)
    return out
