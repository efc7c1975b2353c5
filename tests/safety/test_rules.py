"""The rules file: defaults equal to the simulator's thresholds, per-protocol overrides, and clear failures."""

from __future__ import annotations

import copy

import pytest
import yaml

from clinic_pipeline.safety.rules import DEFAULT_RULES, RulesConfigError, load_rules, rules_from_mapping
from clinic_pipeline.simulator.config import load_network_config

RAW = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
SIMULATOR = load_network_config()
LIMIT_KEYS = ("sbp_over", "dbp_over", "hr_over", "spo2_under", "consecutive")


def test_every_simulated_protocol_has_its_rules():
    rules = load_rules()
    assert set(SIMULATOR["protocols"]) == set(rules.protocols)
    for name, protocol in SIMULATOR["protocols"].items():
        assert rules.for_protocol(name).induction_infusions == protocol["induction_infusions"], name


def test_reading_rules_equal_the_simulators_safety_thresholds():
    """The ground truth evaluates the simulator's thresholds: our defaults must be the same numbers."""
    rules = load_rules()
    thresholds = SIMULATOR["safety_thresholds"]
    for protocol in rules.all_protocols().values():
        for rule in protocol.reading_rules:
            expected = thresholds[rule.name]
            for key in LIMIT_KEYS:
                if key in expected:
                    assert getattr(rule, key) == expected[key], (protocol.protocol, rule.name, key)
                elif key != "consecutive":
                    assert getattr(rule, key) is None, (protocol.protocol, rule.name, key)
        assert protocol.dissociation.cadss_over == thresholds["cadss_at_discharge"]["cadss_over"]
        assert protocol.suicidality.phq9_item9_at_least == thresholds["phq9_item9"]["item9_at_least"]
        assert list(protocol.suicidality.cssrs_high_risk_questions) == thresholds["cssrs_high_risk"]["questions"]
        assert protocol.ctcae_version == SIMULATOR["adverse_events"]["ctcae_version"]
    configured = {r.name for r in rules.default.reading_rules}
    assert configured == set(thresholds) - {"cadss_at_discharge", "phq9_item9", "cssrs_high_risk"}


def test_protocol_overrides_change_only_what_they_name():
    rules = load_rules()
    assert rules.for_protocol("esketamine").monitoring.min_observation_min == 120  # REMS
    assert rules.for_protocol("iv_depression").monitoring.min_observation_min is None
    assert rules.for_protocol("iv_pain").monitoring.max_gap_during_infusion_min == 15
    assert rules.for_protocol("iv_depression").monitoring.max_gap_during_infusion_min == 10
    assert rules.for_protocol("iv_pain").monitoring.max_reading_gap_min == 15
    assert rules.for_protocol("no_such_protocol") is rules.default


def test_a_protocol_can_switch_to_ctcae_v6_and_tighten_a_rule():
    raw = copy.deepcopy(RAW)
    raw["protocols"]["esketamine"]["ctcae_version"] = "6.0"
    raw["protocols"]["esketamine"]["reading_rules"] = {"severe_bp_sustained": {"max_minutes_apart": 10}}
    rules = rules_from_mapping(raw)
    esketamine = rules.for_protocol("esketamine")
    assert esketamine.ctcae_version == "6.0" and rules.for_protocol("iv_pain").ctcae_version == "5.0"
    assert esketamine.rule("severe_bp_sustained").max_minutes_apart == 10
    assert esketamine.rule("severe_bp_sustained").sbp_over == 180  # the rest comes from the defaults


def mutate(path: list[str], value) -> dict:
    raw = copy.deepcopy(RAW)
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ["protocols", "esketamine", "monitoring", "min_observaton_min"],
            120,
            "protocols.esketamine.monitoring.min_observaton_min: unknown key",
        ),
        (
            ["defaults", "reading_rules", "spo2_low", "spo2_under"],
            "ninety",
            "defaults.reading_rules.spo2_low.spo2_under: expected a number",
        ),
        (["defaults", "reading_rules", "predose_bp", "phase"], "during", "defaults.reading_rules.predose_bp.phase"),
        (["defaults", "ctcae_version"], "4.03", "defaults.ctcae_version"),
        (["protocols", "iv_pain", "ctcae_versoin"], "6.0", "protocols.iv_pain.ctcae_versoin: unknown key"),
        (
            ["defaults", "reading_rules", "heart_rate_sustained", "consecutive"],
            0,
            "defaults.reading_rules.heart_rate_sustained.consecutive",
        ),
        (
            ["defaults", "reading_rules", "severe_bp_single", "detected_term"],
            "hypertensive_crisis",
            "defaults.reading_rules.severe_bp_single.detected_term",
        ),
        (
            ["defaults", "suicidality", "cssrs_high_risk_questions"],
            ["q7"],
            "defaults.suicidality.cssrs_high_risk_questions",
        ),
        (["reporting", "infusion_buckets"], ["1", "3-5", "6+"], "reporting.infusion_buckets"),
        (["reporting", "severe_event", "reading_rules"], ["spo2_very_low"], "reporting.severe_event.reading_rules"),
        (["defaults", "monitoring", "reading_near_min"], -40, "defaults.monitoring.reading_near_min: must be >= 0"),
    ],
)
def test_a_bad_key_fails_with_its_path(path, value, message):
    with pytest.raises(RulesConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        rules_from_mapping(mutate(path, value))


def test_a_missing_threshold_fails():
    raw = copy.deepcopy(RAW)
    del raw["defaults"]["monitoring"]["max_reading_gap_min"]
    with pytest.raises(RulesConfigError, match=r"defaults\.monitoring\.max_reading_gap_min: missing"):
        rules_from_mapping(raw)
    raw = copy.deepcopy(RAW)
    raw["defaults"]["reading_rules"]["spo2_low"] = {"phase": "post_dose"}
    with pytest.raises(RulesConfigError, match=r"defaults\.reading_rules\.spo2_low: needs at least one of"):
        rules_from_mapping(raw)


def test_the_file_name_is_in_the_message(tmp_path):
    bad = tmp_path / "clinic_rules.yaml"
    bad.write_text(yaml.safe_dump(mutate(["defaults", "ctcae_version"], "7.0")))
    with pytest.raises(RulesConfigError, match=r"clinic_rules\.yaml: defaults\.ctcae_version"):
        load_rules(bad)
