"""The safety marts against the simulator's ground truth.

Clean network: breaches, suicidality flags, dissociation flags, CADSS ratings, staff-recorded adverse events
and sessions per protocol equal the truth exactly. Faulty network: every difference is explained by an
injected fault: a reading, questionnaire, rating or EHR row held in quarantine, a unit conversion's rounding,
or a session whose EHR row (with its start time) is held.
"""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from tests.safety.conftest import SafetyBuild


def truth_breaches(build: SafetyBuild) -> set[tuple]:
    return {
        (b["session_id"], b["rule"], float(b["minutes_from_start"]), b["value"])
        for b in build.network.truth["threshold_breaches"]
    }


def mart_breaches(build: SafetyBuild) -> set[tuple]:
    found = build.mart("threshold_breaches")
    return set(zip(found["session_id"], found["rule"], found["first_minutes_from_start"], found["value"], strict=True))


def staff_events(build: SafetyBuild) -> pd.DataFrame:
    events = build.mart("adverse_events")
    return events.loc[events["origin"] == "staff_recorded"]


def infusion_key(number: int) -> str:
    return "1" if number == 1 else "2" if number == 2 else "3+"


# --- clean network: exact ------------------------------------------------------------------------------


def test_every_reading_rule_shows_up_in_the_clean_network(clean_build):
    assert set(clean_build.network.truth["counts"]["threshold_breaches_by_rule"]) == {
        "predose_bp",
        "session_bp_high",
        "severe_bp_sustained",
        "severe_bp_single",
        "heart_rate_high",
        "heart_rate_sustained",
        "spo2_low",
    }


def test_breaches_equal_the_truth(clean_build):
    assert mart_breaches(clean_build) == truth_breaches(clean_build)
    counts = clean_build.mart("threshold_breaches")["rule"].value_counts().to_dict()
    assert counts == clean_build.network.truth["counts"]["threshold_breaches_by_rule"]
    summary = clean_build.mart("breach_summary").groupby("rule")["sessions_with_breach"].sum().to_dict()
    assert {k: v for k, v in summary.items() if v} == counts


def test_suicidality_flags_equal_the_truth(clean_build):
    flags = clean_build.mart("suicidality_flags")
    positive = flags.loc[flags["flag_kind"] == "positive"]
    truth = clean_build.network.truth["suicidality_flags"]
    assert set(zip(positive["questionnaire_id"], positive["rule"], positive["value"], strict=True)) == {
        (f["questionnaire_id"], f["rule"], str(f["value"])) for f in truth
    }
    assert (flags["flag_kind"] == "unknown").sum() == 0  # every form complete in a clean network
    listing = clean_build.mart("suicidality_listing")
    assert len(listing) == len(truth) and listing["patient_token"].notna().all()


def test_dissociation_and_cadss_equal_the_truth(clean_build):
    safety = clean_build.mart("session_safety").set_index("session_id")
    truth = clean_build.network.truth
    assert set(safety.index[safety["dissociation_at_discharge"]]) == {
        f["session_id"] for f in truth["dissociation_flags"]
    }
    assert not safety["dissociation_discharge_unknown"].any()
    by_timepoint = {"40min": "cadss_peak", "discharge": "cadss_discharge"}
    for rating in truth["cadss"]:
        value = safety.loc[rating["session_id"], by_timepoint[rating["timepoint"]]]
        if rating["timepoint"] == "discharge":
            assert value == rating["total"], rating
        else:  # the peak is the highest rating; the simulator's discharge score never exceeds the 40-min one
            assert value == max(rating["total"], safety.loc[rating["session_id"], "cadss_discharge"]), rating
    cadss = clean_build.mart("cadss_by_infusion")
    assert cadss["ratings"].sum() == len(truth["cadss"])


def test_staff_adverse_events_equal_the_truth(clean_build):
    entered = clean_build.network.entered_adverse_events
    events = staff_events(clean_build)
    assert sorted(events["ae_key"]) == sorted(e["ae_id"] for e in entered)
    assert Counter(events["term"]) == Counter(e["term"] for e in entered)
    assert Counter(zip(events["clinic_id"], events["term"], strict=True)) == Counter(
        (e["clinic_id"], e["term"]) for e in entered
    )
    assert Counter(zip(events["infusion_number"].map(infusion_key), events["term"], strict=True)) == Counter(
        (infusion_key(e["infusion_number"]), e["term"]) for e in entered
    )
    assert int(events["serious"].sum()) == sum(e["serious"] for e in entered)
    assert len(clean_build.mart("serious_event_listing")) == sum(e["serious"] for e in entered) > 0
    # The incidence cube holds the same staff-recorded counts per term.
    cube = clean_build.mart("ae_incidence")
    staff_cells = cube.loc[(cube["measure"] == "per_100_infusions") & (cube["origin"] == "staff_recorded")]
    assert staff_cells.groupby("term")["numerator"].sum().to_dict() == dict(Counter(e["term"] for e in entered))


def test_sessions_readings_and_peaks_equal_the_truth(clean_build):
    truth = clean_build.network.truth
    safety = clean_build.mart("session_safety").set_index("session_id")
    assert safety["session_staged"].all()
    assert safety["protocol"].value_counts().to_dict() == truth["counts"]["sessions_by_protocol"]
    exposure = clean_build.mart("ae_exposure")
    assert exposure.loc[exposure["infusion_bucket"] == "all", "infusions"].sum() == truth["counts"]["sessions"]
    for s in truth["sessions"]:
        row = safety.loc[s["session_id"]]
        assert row["readings"] == s["readings"], s["session_id"]
        # The truth's maximum includes the pre-dose reading; ours splits baseline and post-dose peak.
        assert max(row["baseline_sbp_mmhg"], row["peak_sbp_mmhg"]) == s["max_sbp"], s["session_id"]
        assert max(row["baseline_dbp_mmhg"], row["peak_dbp_mmhg"]) == s["max_dbp"], s["session_id"]
        assert max(row["baseline_sbp_mmhg"], row["peak_sbp_mmhg"]) - row["baseline_sbp_mmhg"] == s["peak_delta_sbp"]


def test_monitoring_cadence_of_the_simulated_clinics_is_compliant(clean_build):
    """The simulator reads vitals as DOMAIN.md says (baseline, every 5-10 min, every 15 after, esketamine
    >= 2 h): with nothing lost, every reading check passes; only readiness may fail, on the readings."""
    safety = clean_build.mart("session_safety")
    for check in (
        "predose_bp_recorded",
        "reading_near_40_min",
        "reading_before_discharge",
        "cadence_during_infusion_met",
        "cadence_overall_met",
    ):
        assert safety[check].all(), check
    esketamine = safety.loc[safety["protocol"] == "esketamine"]
    assert len(esketamine) > 0 and esketamine["min_observation_met"].astype(bool).all()
    not_ready = safety.loc[~safety["discharged_when_ready"]]
    # Every session discharged before it was ready is either still dissociated at discharge or had a
    # reading outside the discharge criteria after the 40-min check.
    late_bad = not_ready["dissociation_at_discharge"] | not_ready["ready_for_discharge_min"].isna()
    assert late_bad.all()


def test_detected_events_are_recorded_by_staff_unless_entered_late(clean_build):
    """The simulated staff record every severe BP, sustained tachycardia and desaturation: a vitals-detected
    event without a staff record must be one whose record is typed in after the last simulated day."""
    events = clean_build.mart("adverse_events")
    detected = events.loc[events["origin"] == "vitals_detected"]
    assert len(detected) > 0
    truth = clean_build.network.truth
    late = {(e["session_id"], e["term"]) for e in truth["adverse_events"] if e["entered_day"] > truth["last_day"]}
    unmatched = detected.loc[detected["matched_staff_ae_id"].isna()]
    assert set(zip(unmatched["session_id"], unmatched["term"], strict=True)) <= late


# --- faulty network: every difference explained -------------------------------------------------------


@pytest.fixture(scope="module")
def faulty(faulty_build) -> dict:
    truth = faulty_build.network.truth
    safety = faulty_build.mart("session_safety").set_index("session_id")
    expected_readings = pd.Series({s["session_id"]: s["readings"] for s in truth["sessions"]})
    lost = expected_readings - safety["readings"].reindex(expected_readings.index).fillna(0)
    vitals = faulty_build.lake.read_parquets(faulty_build.lake.staged_table("vital_signs"))
    quarantine = faulty_build.lake.read_parquets(faulty_build.lake.path("quarantine"))
    return {
        "truth": truth,
        "safety": safety,
        "lost_readings": set(lost.index[lost > 0]),
        "converted": set(vitals.loc[vitals["converted_units"].str.contains("sbp|dia|dbp", na=False), "session_id"]),
        "not_staged": set(safety.index[~safety["session_staged"]]),
        "quarantined_keys": set(quarantine["row_key"]),
        "quarantine": quarantine,
        "faults": truth["faults"],
    }


def test_faulty_breaches_differ_only_where_readings_were_lost_or_converted(faulty_build, faulty):
    mine, truth = mart_breaches(faulty_build), truth_breaches(faulty_build)
    assert len(mine & truth) > 0.75 * len(truth)  # faults hit ~1 reading in 10
    explained = faulty["lost_readings"] | faulty["converted"] | faulty["not_staged"]
    unexplained = {b for b in mine ^ truth if b[0] not in explained}
    assert unexplained == set()
    # A session whose start is unknown still has its breaches, timed by observation only.
    orphans = faulty_build.mart("threshold_breaches")
    orphans = orphans.loc[~orphans["session_staged"]]
    assert orphans["confirmed_observed_at"].notna().all()


def test_faulty_suicidality_flags_are_kept_or_explained(faulty_build, faulty):
    flags = faulty_build.mart("suicidality_flags")
    positive = set(
        zip(
            flags.loc[flags["flag_kind"] == "positive", "questionnaire_id"],
            flags.loc[flags["flag_kind"] == "positive", "rule"],
            strict=True,
        )
    )
    truth = {(f["questionnaire_id"], f["rule"]) for f in faulty["truth"]["suicidality_flags"]}
    assert positive <= truth  # a fault never invents a positive answer
    faulted = {f["location"].get("questionnaire_id") for f in faulty["faults"]}
    unknown = set(flags.loc[flags["flag_kind"] == "unknown", "questionnaire_id"])
    for questionnaire_id, rule in truth - positive:
        assert questionnaire_id in faulted or questionnaire_id in faulty["quarantined_keys"], (questionnaire_id, rule)
    partial = {f["location"].get("questionnaire_id") for f in faulty["faults"] if f["kind"] == "partial_questionnaire"}
    assert unknown and unknown <= partial  # every unknown answer comes from a partially answered form


def test_faulty_dissociation_flags_are_kept_or_explained(faulty_build, faulty):
    safety = faulty["safety"]
    flagged = set(safety.index[safety["dissociation_at_discharge"]])
    truth = {f["session_id"] for f in faulty["truth"]["dissociation_flags"]}
    assert flagged <= truth
    # A flag lost to a fault leaves the discharge state unknown (rating held in quarantine or incomplete).
    for session_id in truth - flagged:
        assert bool(safety.loc[session_id, "dissociation_discharge_unknown"]), session_id


def test_faulty_staff_events_are_staged_or_quarantined(faulty_build, faulty):
    events = staff_events(faulty_build)
    entered = {e["ae_id"] for e in faulty_build.network.entered_adverse_events}
    assert set(events["ae_key"]) <= entered
    for ae_id in entered - set(events["ae_key"]):
        assert f"adverse_events:{ae_id}" in faulty["quarantined_keys"], ae_id
    # Events of sessions held in quarantine are listed but not rated.
    held = events.loc[~events["session_staged"]]
    assert len(held) > 0 and not held["counts_in_incidence"].any()
    assert set(held["session_id"]) <= {
        k.partition(":")[2] for k in faulty["quarantined_keys"] if k.startswith("infusion_sessions:")
    }


def test_sessions_held_in_quarantine_still_show_their_readings(faulty):
    assert faulty["not_staged"]
    held_sessions = {k.partition(":")[2] for k in faulty["quarantined_keys"] if k.startswith("infusion_sessions:")}
    assert faulty["not_staged"] <= held_sessions
    assert faulty["safety"].loc[list(faulty["not_staged"]), "patient_id"].notna().all()


def test_manifest_reports_the_quarantine_and_the_batches(faulty_build, faulty):
    quality = faulty_build.summary.data_quality
    expected = faulty["quarantine"].groupby("source")["row_count"].sum().to_dict()
    assert quality["rows_quarantined_by_source"] == expected and sum(expected.values()) > 0
    reports = Counter()
    for path in (faulty_build.lake_root / "quality" / "reconciliation").rglob("*.json"):
        record = json.loads(path.read_text())
        reports[(record["source"], record["status"])] += 1
    flat = Counter({(s, st): n for s, v in quality["batches_by_source_status"].items() for st, n in v.items()})
    assert flat == reports
    assert quality["sessions_not_staged_with_readings"] == len(faulty["not_staged"])
