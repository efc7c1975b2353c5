"""The quality rules of every staged table, and the builder of the committed GX File Data Context.

Each rule follows OHDSI DQD: a category (conformance, completeness, plausibility), a severity, a threshold
(the % of a batch's rows that may fail before the whole batch is stopped) and a written reason. Severity:
  critical  failing rows go to quarantine; above the threshold the batch publishes nothing and the run fails
  warning   failing rows are staged with the rule in `quality_flags` for review
Physiological ranges: shared/research/quality_style.md A4 ("impossible" = outside the widest hard filters of
MIMIC-IV/eICU/ricu; "implausible" = outside the narrowest). Clinical sign-off is pending: they are config.

The JSON in expectations/gx/ is generated from this module: `python -m clinic_pipeline.quality.suite_rules`.
A test keeps the two identical.
"""

from __future__ import annotations

import contextlib
import os
import zoneinfo
from pathlib import Path
from typing import Any

EXPECTATIONS_ROOT = Path(__file__).resolve().parents[2] / "expectations"
DATASOURCE = "staged_tables"

# table -> (row key column, rules). A rule: (GX expectation class, kwargs, meta).
IMPOSSIBLE = "outside the widest hard filter used by MIMIC-IV/eICU/ricu: a device or entry error, never a patient"
IMPLAUSIBLE = "outside the narrowest source range: possible but rare; a clinician should look"


def rule(
    expectation: str, rule_name: str, category: str, severity: str, threshold_pct: float, reason: str, **kwargs: Any
) -> dict[str, Any]:
    return {
        "expectation": expectation,
        "kwargs": kwargs,
        "meta": {
            "rule": rule_name,
            "category": category,
            "severity": severity,
            "threshold_pct": threshold_pct,
            "reason": reason,
        },
    }


def _between(
    column: str, low: float, high: float, name: str, severity: str, threshold: float, reason: str, **extra: Any
) -> dict[str, Any]:
    return rule(
        "ExpectColumnValuesToBeBetween",
        name,
        "plausibility",
        severity,
        threshold,
        reason,
        column=column,
        min_value=low,
        max_value=high,
        **extra,
    )


def _instrument_is(instrument: str) -> dict[str, Any]:
    """Row condition: only the rows of one instrument, as GX's serialised Condition (string conditions with a
    `condition_parser` are deprecated in GX 1.9 and go away in 2.0)."""
    return {"type": "comparison", "column": {"name": "instrument"}, "operator": "==", "parameter": instrument}


def _not_null(column: str, name: str, threshold: float, reason: str) -> dict[str, Any]:
    return rule("ExpectColumnValuesToNotBeNull", name, "completeness", "critical", threshold, reason, column=column)


def _unique(column: str, name: str) -> dict[str, Any]:
    return rule(
        "ExpectColumnValuesToBeUnique",
        name,
        "conformance",
        "critical",
        0.0,
        "the row key identifies one record; a repeat would be counted twice",
        column=column,
    )


def _in_set(column: str, values: list[Any], name: str, threshold: float, reason: str) -> dict[str, Any]:
    return rule(
        "ExpectColumnValuesToBeInSet",
        name,
        "conformance",
        "critical",
        threshold,
        reason,
        column=column,
        value_set=values,
    )


SUITES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "clinics": (
        "clinic_id",
        [
            _unique("clinic_id", "clinic_unique"),
            _in_set(
                "timezone",
                sorted(zoneinfo.available_timezones()),
                "timezone_iana",
                5.0,
                "REDCap times are local wall-clock times: converting them needs a valid IANA zone",
            ),
        ],
    ),
    "vital_signs": (
        "control_id",
        [
            _unique("control_id", "reading_unique"),
            _not_null("session_id", "session_present", 5.0, "a reading without its session cannot be reviewed"),
            _not_null(
                "observed_at", "observed_at_present", 5.0, "a reading without a time cannot be placed on a curve"
            ),
            _between("sbp_mmhg", 1, 299, "sbp_impossible", "critical", 5.0, IMPOSSIBLE, strict_max=False),
            _between("dbp_mmhg", 1, 199, "dbp_impossible", "critical", 5.0, IMPOSSIBLE),
            _between("map_mmhg", 1, 249, "map_impossible", "critical", 5.0, IMPOSSIBLE),
            _between("hr_bpm", 1, 299, "hr_impossible", "critical", 5.0, IMPOSSIBLE),
            _between("spo2_pct", 1, 100, "spo2_impossible", "critical", 5.0, IMPOSSIBLE),
            _between("rr_per_min", 1, 69, "rr_impossible", "critical", 5.0, IMPOSSIBLE),
            _between(
                "temp_c",
                25,
                46,
                "temp_impossible",
                "critical",
                5.0,
                IMPOSSIBLE + "; also catches Fahrenheit sent as Celsius",
            ),
            rule(
                "ExpectColumnPairValuesAToBeGreaterThanB",
                "dbp_below_sbp",
                "plausibility",
                "critical",
                5.0,
                "diastolic pressure at or above systolic is a measurement or mapping error",
                column_A="sbp_mmhg",
                column_B="dbp_mmhg",
                or_equal=False,
            ),
            _between("sbp_mmhg", 60, 250, "sbp_implausible", "warning", 100.0, IMPLAUSIBLE),
            _between("hr_bpm", 25, 225, "hr_implausible", "warning", 100.0, IMPLAUSIBLE),
            _between("spo2_pct", 50, 100, "spo2_implausible", "warning", 100.0, IMPLAUSIBLE),
            _between("temp_c", 32, 42, "temp_implausible", "warning", 100.0, IMPLAUSIBLE),
            _between(
                "minutes_from_start",
                -60,
                600,
                "reading_outside_session",
                "warning",
                100.0,
                "readings are expected from baseline (about -5 min) to discharge",
            ),
        ],
    ),
    "questionnaire_responses": (
        "questionnaire_id",
        [
            _unique("questionnaire_id", "response_unique"),
            _not_null("patient_id", "patient_present", 5.0, "a questionnaire must belong to a known patient"),
            _not_null("authored_at", "authored_present", 5.0, "a questionnaire without a time cannot be trended"),
            _in_set("instrument", ["phq9", "gad7", "cssrs"], "instrument_known", 5.0, "only these are collected"),
            _between(
                "total_score",
                0,
                27,
                "phq9_total_range",
                "critical",
                0.0,
                "PHQ-9 total is 0-27 (9 items x 0-3); outside it, our scoring is wrong: stop",
                row_condition=_instrument_is("phq9"),
            ),
            _between(
                "total_score",
                0,
                21,
                "gad7_total_range",
                "critical",
                0.0,
                "GAD-7 total is 0-21 (7 items x 0-3)",
                row_condition=_instrument_is("gad7"),
            ),
            _between("item9_score", 0, 3, "phq9_item9_range", "critical", 5.0, "PHQ-9 item 9 is scored 0-3"),
        ],
    ),
    "clinician_ratings": (
        "rating_key",
        [
            _unique("rating_key", "rating_unique"),
            _not_null("session_id", "session_present", 5.0, "a rating without its session cannot be reviewed"),
            _not_null("rated_at", "rated_at_present", 5.0, "a rating without a time cannot be placed in a session"),
            _between(
                "total_score",
                0,
                92,
                "cadss_total_range",
                "critical",
                0.0,
                "CADSS total is 0-92 (23 items x 0-4)",
                row_condition=_instrument_is("cadss"),
            ),
            _between(
                "total_score",
                0,
                60,
                "madrs_total_range",
                "critical",
                0.0,
                "MADRS total is 0-60 (10 items x 0-6)",
                row_condition=_instrument_is("madrs"),
            ),
            _between(
                "minutes_from_start",
                -120,
                600,
                "rating_outside_session",
                "warning",
                100.0,
                "ratings are expected during the session or shortly before it",
            ),
        ],
    ),
    "patients": (
        "patient_id",
        [
            _unique("patient_id", "patient_unique"),
            _not_null("mrn", "mrn_present", 5.0, "the MRN links monitors and the patient app to the patient"),
            _not_null("weight_kg", "weight_present", 5.0, "weight is needed to check the mg/kg dose"),
            _between("weight_kg", 20, 500, "weight_impossible", "critical", 5.0, IMPOSSIBLE),
            _between("weight_kg", 35, 250, "weight_implausible", "warning", 100.0, IMPLAUSIBLE),
            _in_set("sex", ["female", "male", "other", "unknown"], "sex_coded", 5.0, "FHIR administrative gender"),
            _not_null("birth_date", "birth_date_present", 5.0, "age drives blood-pressure risk"),
        ],
    ),
    "infusion_sessions": (
        "session_id",
        [
            _unique("session_id", "session_unique"),
            _not_null("started_at", "start_present", 5.0, "without a start, readings cannot be timed from dosing"),
            _not_null("patient_id", "patient_present", 5.0, "a session belongs to a patient"),
            _between(
                "dose_mg_per_kg",
                0.01,
                5.0,
                "dose_impossible",
                "critical",
                5.0,
                "above 5 mg/kg is anaesthetic territory: an entry error, not a psychiatric dose",
            ),
            _between(
                "dose_mg_per_kg",
                0.1,
                1.5,
                "dose_unusual",
                "warning",
                100.0,
                "sub-anaesthetic protocols use 0.1-1.0 mg/kg IV (pain up to ~1.4): review outliers",
            ),
            _between("infusion_number", 1, 500, "infusion_number_range", "critical", 5.0, "series numbers start at 1"),
            _in_set(
                "protocol",
                ["iv_depression", "iv_ptsd", "iv_pain", "esketamine"],
                "protocol_known",
                5.0,
                "dashboards group by protocol",
            ),
            _in_set("route", ["IV", "NASAL", "IM"], "route_known", 5.0, "route maps to a SNOMED route code"),
            rule(
                "ExpectColumnPairValuesAToBeGreaterThanB",
                "discharge_after_start",
                "plausibility",
                "critical",
                5.0,
                "discharge before the start of dosing is an entry error",
                column_A="discharged_at",
                column_B="started_at",
                or_equal=False,
                ignore_row_if="either_value_is_missing",
            ),
        ],
    ),
    "adverse_events": (
        "ae_id",
        [
            _unique("ae_id", "adverse_event_unique"),
            _not_null("term", "term_present", 5.0, "an adverse event without a term cannot be counted or reviewed"),
            _not_null("onset_at", "onset_present", 5.0, "onset time places the event in the session"),
            _between("ctcae_grade", 1, 5, "grade_range", "critical", 5.0, "CTCAE grades are 1-5"),
            _in_set(
                "ctcae_version", ["5.0", "6.0"], "ctcae_version_known", 5.0, "a grade means nothing without its version"
            ),
            _in_set(
                "relatedness",
                ["related", "possibly_related", "unlikely_related", "not_related"],
                "relatedness_coded",
                5.0,
                "dashboards filter on relatedness",
            ),
            _in_set(
                "action_taken",
                ["none", "paused", "stopped", "medication_given", "ed_transfer"],
                "action_coded",
                5.0,
                "dashboards filter on the action taken",
            ),
            _in_set(
                "outcome",
                ["recovered", "recovering", "not_recovered", "recovered_with_sequelae", "fatal"],
                "outcome_coded",
                5.0,
                "outcome follows the ICH E2B value list",
            ),
        ],
    ),
    "concomitant_medications": (
        "medication_id",
        [
            _unique("medication_id", "medication_unique"),
            _in_set(
                "drug_class",
                [
                    "ssri_snri",
                    "benzodiazepine",
                    "stimulant",
                    "maoi",
                    "opioid",
                    "antihypertensive",
                    "lamotrigine",
                    "other",
                ],
                "drug_class_known",
                5.0,
                "risk strata use the drug class",
            ),
        ],
    ),
}


def build_context(project_root: Path = EXPECTATIONS_ROOT) -> None:
    """(Re)write the File Data Context: one dataframe asset, suite, validation definition and checkpoint per table."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("CLINIC_QUALITY_DIR", str(project_root / "uncommitted"))
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="file", project_root_dir=str(project_root))
    for site in list(context.get_config().data_docs_sites or {}):
        context.delete_data_docs_site(site)
    context.add_data_docs_site(
        site_name="clinic_quality",
        site_config={
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": "${CLINIC_QUALITY_DIR}/data_docs/",
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    if DATASOURCE in context.data_sources.all():
        context.data_sources.delete(DATASOURCE)
    source = context.data_sources.add_pandas(DATASOURCE)
    for table, (_key, rules) in SUITES.items():
        batch_definition = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("batch")
        name = f"{table}_suite"
        for store in (context.checkpoints, context.validation_definitions, context.suites):
            with contextlib.suppress(Exception):  # first build: nothing to delete
                store.delete(
                    f"{table}_checkpoint"
                    if store is context.checkpoints
                    else f"{table}_validation"
                    if store is context.validation_definitions
                    else name
                )
        suite = gx.ExpectationSuite(name=name, meta={"table": table, "row_key": SUITES[table][0]})
        for spec in rules:
            expectation = getattr(gxe, spec["expectation"])(
                **spec["kwargs"], meta=spec["meta"], severity=spec["meta"]["severity"]
            )
            suite.add_expectation(expectation)
        suite = context.suites.add(suite)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{table}_validation", data=batch_definition, suite=suite)
        )
        # COMPLETE results with the row key and batch: the gate quarantines exactly the failing rows.
        result_format = {
            "result_format": "COMPLETE",
            "unexpected_index_column_names": [SUITES[table][0], "batch_id"],
            "partial_unexpected_count": 0,
        }
        context.checkpoints.add(
            gx.Checkpoint(
                name=f"{table}_checkpoint", validation_definitions=[validation], actions=[], result_format=result_format
            )
        )
    # Validation results belong to the lake's quality/ folder, like the Data Docs, never to the repository.
    config_file = Path(context.root_directory) / "great_expectations.yml"
    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(
        text.replace("base_directory: uncommitted/validations/", "base_directory: ${CLINIC_QUALITY_DIR}/validations/"),
        encoding="utf-8",
    )


if __name__ == "__main__":
    build_context()
