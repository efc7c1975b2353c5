"""The site's numbers are the marts' numbers (where shown), and nothing internal reaches the site.

Each shown count is recomputed here from the publication marts, independently of the dashboard code (the
incidence cells by filtering the mart's cube the way docs/safety-metrics.md says to); statistics withheld
with their count are checked to be exactly those whose count is hidden.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from clinic_pipeline.safety.marts import INTERNAL, MART_DOCS
from tests.dashboard.conftest import PublishedDashboard

ALL, ANY = "all", "any"


def shown_rows(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.loc[frame[column].notna()]


def test_incidence_cells_equal_the_cube(dashboard: PublishedDashboard):
    """Every shown incidence count (events and patients) equals the mart's cube filtered the documented way:
    per 100 infusions = sum of numerators over every matching row; per patient = the pre-computed roll-up
    row, summed over clinic, protocol and stratum (patient attributes)."""
    cube = dashboard.build.mart("ae_incidence")
    per_infusion = cube.loc[cube["measure"] == "per_100_infusions"]
    per_patient = cube.loc[cube["measure"] == "per_patient"]
    table = dashboard.csv("ae_incidence")
    shown = table.loc[table["events"] != "<11"]
    assert len(shown) > 20, "the test network shows too few cells to compare"
    for row in shown.itertuples(index=False):
        events = per_infusion
        patients = per_patient.loc[per_patient["infusion_bucket"] == row.infusion_bucket]
        for dim in ("clinic_id", "protocol", "conmed_stratum", "infusion_bucket"):
            value = getattr(row, dim)
            if value != ALL:
                events = events.loc[events[dim] == value]
                patients = patients.loc[patients[dim] == value]
        for dim in ("severity", "seriousness", "relatedness"):
            wanted = row.event_filter_value if row.event_filter == dim else ANY
            if wanted != ANY:
                events = events.loc[events[dim] == wanted]
            patients = patients.loc[patients[dim] == wanted]
        if row.body_system != ALL:
            events = events.loc[events["body_system"] == row.body_system]
        if row.term != ALL:
            events = events.loc[events["term"] == row.term]
        patients = patients.loc[(patients["body_system"] == row.body_system) & (patients["term"] == row.term)]
        assert int(row.events) == int(events["numerator"].sum()), row
        assert int(row.patients_with_event) == int(patients["numerator"].sum()), row


def test_exposure_equals_the_mart(dashboard: PublishedDashboard):
    exposure = dashboard.build.mart("ae_exposure")
    table = dashboard.csv("ae_exposure")
    concrete = exposure.loc[exposure["infusion_bucket"] != ALL]
    network = table.loc[(table[["clinic_id", "protocol", "conmed_stratum", "infusion_bucket"]] == ALL).all(axis=1)]
    assert int(network["infusions"].iloc[0]) == int(concrete["infusions"].sum())
    everyone = exposure.loc[exposure["infusion_bucket"] == ALL]
    assert int(network["patients"].iloc[0]) == int(everyone["patients"].sum())
    shown = table.loc[
        (table["infusions"] != "<11") & (table[["clinic_id", "protocol", "conmed_stratum"]] != ALL).all(axis=1)
    ]
    merged = shown.merge(exposure.astype({"infusions": str, "patients": str}), on=list(shown.columns[:4]))
    assert len(merged) == len(shown)
    assert (merged["infusions_x"] == merged["infusions_y"]).all()
    assert (merged["patients_x"] == merged["patients_y"]).all()


def test_funnel_and_spc_equal_the_marts(dashboard: PublishedDashboard):
    funnel = dashboard.table("funnel_clinics")
    mart = dashboard.build.mart("funnel_clinics")
    clinics = shown_rows(funnel.loc[funnel["clinic_id"] != "network"], "sessions_with_event")
    merged = clinics.merge(mart, on=["measure", "clinic_id"], suffixes=("", "_mart"))
    assert len(merged) == len(clinics) > 0
    assert (merged["sessions_with_event"] == merged["count"]).all()
    assert (merged["infusions"] == merged["n"]).all()
    for column in ("proportion", "lower_95", "upper_95", "lower_998", "upper_998"):
        assert np.allclose(merged[column].astype(float), merged[f"{column}_mart"], atol=1e-4), column
    spc = shown_rows(dashboard.table("spc_weekly"), "count")
    weekly = dashboard.build.mart("spc_weekly")
    merged = spc.merge(weekly, on=["chart", "scope", "week_index"], suffixes=("", "_mart"))
    assert len(merged) == len(spc) > 0
    assert (merged["infusions"] == merged["n"]).all() and (merged["count"] == merged["count_mart"]).all()
    assert np.allclose(merged["value"].astype(float), merged["value_mart"], atol=1e-4)
    centred = merged.loc[merged["center"].notna()]
    assert np.allclose(centred["center"].astype(float), centred["center_mart"], atol=1e-4)


def test_distributions_are_shown_only_with_their_count(dashboard: PublishedDashboard):
    """BP curves, CADSS and PHQ-9 trajectories: a statistic is shown exactly when its count is >= 11, and
    then equals the mart's."""
    for name, count, keys, stats in (
        ("bp_curves", "sessions", ["protocol", "minute_bin", "measure"], ["mean", "median", "p10", "p90"]),
        ("cadss_by_infusion", "ratings", ["protocol", "infusion_label", "timepoint"], ["median", "p25", "p75"]),
        ("phq9_trajectories", "patients", ["protocol", "outcome_class", "infusion_label"], ["median", "p25", "p75"]),
    ):
        table = dashboard.table(name)
        mart = dashboard.build.mart(name)
        merged = table.merge(mart, on=keys, suffixes=("", "_mart"))
        assert len(merged) == len(mart)
        big = merged[f"{count}_mart"] >= 11
        if name == "bp_curves":
            big &= merged["readings_mart"] >= 11
        for stat in stats:
            assert merged.loc[~big, stat].isna().all(), f"{name}.{stat} shown for a small count"
            assert np.allclose(merged.loc[big, stat].astype(float), merged.loc[big, f"{stat}_mart"], atol=1e-3)


def test_breaches_monitoring_and_outcomes_equal_the_marts(dashboard: PublishedDashboard):
    for name, keys, counts in (
        ("breach_summary", ["clinic_id", "protocol", "infusion_bucket", "rule"], ["sessions_with_breach"]),
        ("monitoring_compliance", ["clinic_id", "protocol", "infusion_bucket", "check"], ["sessions_passed"]),
        ("phq9_outcomes", ["clinic_id", "protocol", "readout"], ["patients_with_baseline", "responders"]),
    ):
        table = dashboard.table(name)
        mart = dashboard.build.mart(name)
        concrete = table.loc[(table[keys[:2]] != ALL).all(axis=1)]
        if "infusion_bucket" in keys:
            concrete = concrete.loc[concrete["infusion_bucket"] != ALL]
        merged = concrete.merge(mart, on=keys, suffixes=("", "_mart"))
        for count in counts:
            shown = merged.loc[merged[count].notna()]
            assert (shown[count].astype(int) == shown[f"{count}_mart"]).all(), f"{name}.{count}"
        # An "all" row is the sum of the mart's rows.
        network = table.loc[(table[keys[:-1]] == ALL).all(axis=1)]
        for count in counts:
            for row in shown_rows(network, count).itertuples(index=False):
                expected = mart.loc[mart[keys[-1]] == getattr(row, keys[-1]), count].sum()
                assert getattr(row, count) == expected, f"{name} all-row {count}"


def test_serious_listing_is_the_mart_without_dates(dashboard: PublishedDashboard):
    table = dashboard.table("serious_event_listing")
    mart = dashboard.build.mart("serious_event_listing")
    assert sorted(table["patient_token"]) == sorted(mart["patient_token"].astype(str))
    assert sorted(table["course_day"].astype(int)) == sorted(mart["course_day"].astype(int))


def test_rates_come_from_shown_counts_only(dashboard: PublishedDashboard):
    breaches = dashboard.table("breach_summary")
    with_rate = breaches.loc[breaches["pct_sessions"].notna()]
    assert with_rate["sessions"].notna().all() and with_rate["sessions_with_breach"].notna().all()
    recomputed = 100 * with_rate["sessions_with_breach"].astype(float) / with_rate["sessions"].astype(float)
    assert np.allclose(recomputed, with_rate["pct_sessions"].astype(float), atol=1e-3)
    monitoring = dashboard.table("monitoring_compliance")
    with_rate = monitoring.loc[monitoring["pct_passed"].notna()]
    assert with_rate["sessions_passed"].notna().all() and with_rate["sessions_evaluated"].notna().all()


# ------------------------------------------------------------------------------------------------ privacy

INTERNAL_COLUMNS = {"patient_id", "session_id", "mrn", "started_at", "observed_at", "authored_at", "rated_at"}


def test_no_internal_column_in_the_site(dashboard: PublishedDashboard):
    data = dashboard.data
    names = {c for t in data["tables"].values() for c in t["columns"]}
    for csv in dashboard.csv_names():
        names |= set(dashboard.csv(csv).columns)
    assert not names & INTERNAL_COLUMNS
    assert not any(n.endswith(("_at", "_id")) and n != "clinic_id" for n in names), names


def test_no_identifier_or_date_of_care_in_the_site(dashboard: PublishedDashboard):
    """No session, patient or questionnaire id from the internal marts appears anywhere; the only date-time is
    the as-of time (no week dates, no service dates)."""
    internal = [name for name, (audience, _) in MART_DOCS.items() if audience == INTERNAL]
    ids: set[str] = set()
    for name in internal:
        frame = dashboard.build.mart(name)
        for column in frame.columns:
            if column.endswith("_id") and column != "clinic_id":
                ids |= {str(v) for v in frame[column].dropna().unique() if len(str(v)) >= 5}
    texts = {"index.html": dashboard.html}
    texts |= {f"{n}.csv": (dashboard.folder / "csv" / f"{n}.csv").read_text() for n in dashboard.csv_names()}
    for name, text in texts.items():
        leaked = [i for i in ids if i in text]
        assert not leaked, f"{name} contains internal ids, e.g. {leaked[:3]}"
        dates = set(re.findall(r"\b20\d\d-\d\d-\d\d", text))
        as_of = dashboard.data["meta"]["as_of"][:10]
        assert dates <= {as_of}, f"{name} contains dates {sorted(dates)[:5]}"


def test_the_site_reads_publication_marts_only(dashboard: PublishedDashboard, tmp_path):
    """Internal marts deleted: the site still builds; a manifest calling a mart internal stops it."""
    import json
    import shutil

    from clinic_pipeline.dashboard.build import build_dashboard_site
    from clinic_pipeline.lake import Lake

    root = tmp_path / "lake"
    shutil.copytree(dashboard.lake.path("marts"), root / "marts")
    for name, (audience, _) in MART_DOCS.items():
        if audience == INTERNAL:
            (root / "marts" / f"{name}.parquet").unlink()
    build_dashboard_site(Lake(root))
    manifest_path = root / "marts" / "_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["marts"]:
        if entry["name"] == "ae_incidence":
            entry["audience"] = INTERNAL
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="ae_incidence"):
        build_dashboard_site(Lake(root))
