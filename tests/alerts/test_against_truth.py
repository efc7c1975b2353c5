"""Alerts evaluated on a simulated network against the simulator's ground truth: every serious adverse event,
severe BP breach and suicidality flag of the truth gives exactly one alert, with the right clinic, infusion
number and pseudonymous token, and nothing else alerts."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from clinic_pipeline.alerts import model
from clinic_pipeline.alerts.evaluate import SEVERE_BP_RULES, evaluate_alerts


def _by_kind(alerts: list[model.SafetyAlert]) -> dict[str, list[model.SafetyAlert]]:
    out: dict[str, list[model.SafetyAlert]] = {}
    for alert in alerts:
        out.setdefault(alert.kind, []).append(alert)
    return out


def test_every_truth_event_gives_exactly_one_alert(alerts_build, lake):
    truth = alerts_build.network.truth
    alerts = evaluate_alerts(lake)
    keys = [a.dedupe_key for a in alerts]
    assert len(keys) == len(set(keys)), "one alert per event"
    kinds = _by_kind(alerts)

    serious = [e for e in alerts_build.network.entered_adverse_events if e["serious"]]
    assert len(serious) == truth["counts"]["serious_adverse_events"] > 0
    assert sorted(a.dedupe_key for a in kinds[model.SERIOUS_AE]) == sorted(f"serious_ae:{e['ae_id']}" for e in serious)

    severe = [b for b in truth["threshold_breaches"] if b["rule"] in SEVERE_BP_RULES]
    assert {b["rule"] for b in severe} == set(SEVERE_BP_RULES), "the network breaks both severe BP rules"
    assert sorted(a.dedupe_key for a in kinds[model.SEVERE_BP]) == sorted(
        f"breach:{b['session_id']}:{b['rule']}" for b in severe
    )

    flags = truth["suicidality_flags"]
    assert Counter(f["rule"] for f in flags) == truth["counts"]["suicidality_flags_by_rule"]
    assert sorted(a.dedupe_key for a in kinds[model.SUICIDALITY]) == sorted(
        f"suicidality:{f['questionnaire_id']}:{f['rule']}" for f in flags
    )
    assert model.SUICIDALITY_UNKNOWN not in kinds, "every form is complete in a clean network"
    assert len(alerts) == len(serious) + len(severe) + len(flags)


def test_alerts_carry_clinic_infusion_token_and_priority(alerts_build, lake):
    truth = alerts_build.network.truth
    tokens = pd.read_parquet(alerts_build.lake_root / "state" / "pseudonyms.parquet").set_index("patient_id")[
        "patient_token"
    ]
    sessions = {s["session_id"]: s for s in truth["sessions"]}
    expected = {}
    for e in alerts_build.network.entered_adverse_events:
        if e["serious"]:
            expected[f"serious_ae:{e['ae_id']}"] = (e["clinic_id"], e["infusion_number"], e["patient_id"], "urgent")
    for b in truth["threshold_breaches"]:
        if b["rule"] in SEVERE_BP_RULES:
            s = sessions[b["session_id"]]
            expected[f"breach:{b['session_id']}:{b['rule']}"] = (
                s["clinic_id"],
                s["infusion_number"],
                s["patient_id"],
                "high",
            )
    for f in truth["suicidality_flags"]:
        s = sessions[f["session_id"]]
        priority = "urgent" if f["rule"] == "cssrs_high_risk" else "high"
        expected[f"suicidality:{f['questionnaire_id']}:{f['rule']}"] = (
            s["clinic_id"],
            s["infusion_number"],
            f["patient_id"],
            priority,
        )
    alerts = evaluate_alerts(lake)
    assert {a.dedupe_key for a in alerts} == set(expected)
    for alert in alerts:
        clinic, infusion, patient, priority = expected[alert.dedupe_key]
        assert (alert.clinic_id, alert.infusion_number, alert.priority) == (clinic, infusion, priority), alert
        assert alert.patient_token == tokens[patient] and alert.patient_token.startswith("P-")
        assert alert.course_day is not None and alert.course_day >= 0
        assert alert.alert_ref.startswith("A-") and alert.raised_at.endswith("Z") and alert.occurred_at
    # Most pressing first; references are unique.
    ranks = [model.PRIORITY_RANK[a.priority] for a in alerts]
    assert ranks == sorted(ranks)
    assert len({a.alert_ref for a in alerts}) == len(alerts)


def test_breach_alert_reports_the_reading_that_confirmed_it(alerts_build, lake):
    truth = {(b["session_id"], b["rule"]): b for b in alerts_build.network.truth["threshold_breaches"]}
    for alert in evaluate_alerts(lake):
        if alert.kind == model.SEVERE_BP:
            _, session_id, rule = alert.dedupe_key.split(":")
            b = truth[(session_id, rule)]
            assert alert.details["reading"] == f"{b['value']} mmHg"
            assert alert.details["breach started"] == f"{b['minutes_from_start']:+g} min from the start of dosing"
            assert alert.minutes_from_start >= b["minutes_from_start"]


def test_faulty_network_alerts_every_kept_flag_and_every_unanswered_item(faulty_alerts_build):
    """Faults never invent an alert, a positive answer lost to a fault is explained, and every unanswered
    suicidality item (a partially answered form) alerts for review."""
    build = faulty_alerts_build
    truth = build.network.truth
    alerts = evaluate_alerts(build.lake)
    flags = build.mart("suicidality_flags")
    faults = truth["faults"]
    partial = {f["location"].get("questionnaire_id") for f in faults if f["kind"] == "partial_questionnaire"}
    faulted = {f["location"].get("questionnaire_id") for f in faults}

    positive = {a.dedupe_key for a in alerts if a.kind == model.SUICIDALITY}
    truth_keys = {f"suicidality:{f['questionnaire_id']}:{f['rule']}" for f in truth["suicidality_flags"]}
    assert positive and positive <= truth_keys
    quarantine = build.lake.read_parquets(build.lake.path("quarantine"))
    for key in truth_keys - positive:
        questionnaire_id = key.split(":")[1]
        assert questionnaire_id in faulted or f"questionnaire_responses:{questionnaire_id}" in set(
            quarantine["row_key"]
        )

    unknown = [a for a in alerts if a.kind == model.SUICIDALITY_UNKNOWN]
    expected = flags.loc[flags["flag_kind"] == "unknown"]
    assert len(unknown) == len(expected) > 0
    assert {a.dedupe_key.split(":")[1] for a in unknown} == set(expected["questionnaire_id"]) <= partial
    assert all(a.priority == model.REVIEW and a.patient_token.startswith("P-") for a in unknown)

    # A flag whose session's EHR row is held still alerts, naming clinic and token; the infusion is unknown.
    held = [a for a in alerts if a.infusion_number is None]
    assert held and all(a.clinic_id.startswith("C") and a.patient_token.startswith("P-") for a in held)
    assert all("not staged" in a.details.get("note", "") for a in held)
    assert "Infusion number: unknown" in held[0].text()
