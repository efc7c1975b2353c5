"""Load and validate the safety rules (`safety_rules.yaml`) into typed `SafetyRules`.

A rule file with a typo must not silently fall back to a default threshold: every unknown key, missing key,
wrong type or impossible value fails with a `RulesConfigError` naming the key path, e.g.
`protocols.esketamine.monitoring.min_observaton_min: unknown key`.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import yaml

from transforms.safety.ae_terms import load_term_map
from transforms.safety.rule_set import (
    POST_DOSE,
    PRE_DOSE,
    DissociationRule,
    MonitoringRule,
    ProtocolRules,
    ReadingRule,
    ReportingRules,
    SafetyRules,
    SevereEventDefinition,
    SuicidalityRule,
    parse_buckets,
)

DEFAULT_RULES = Path(__file__).with_name("safety_rules.yaml")
CTCAE_VERSIONS = ("5.0", "6.0")
CSSRS_QUESTIONS = ("q1", "q2", "q3", "q4", "q5", "q6")

PROTOCOL_KEYS = {"ctcae_version", "induction_infusions", "reading_rules", "dissociation", "suicidality", "monitoring"}
READING_RULE_KEYS = {
    "phase",
    "sbp_over",
    "dbp_over",
    "hr_over",
    "spo2_under",
    "consecutive",
    "max_minutes_apart",
    "detected_term",
    "enabled",
}
LIMIT_KEYS = ("sbp_over", "dbp_over", "hr_over", "spo2_under")
MONITORING_KEYS = {
    "predose_reading_within_min",
    "reading_near_min",
    "reading_near_tolerance_min",
    "reading_before_discharge_within_min",
    "max_gap_during_infusion_min",
    "max_reading_gap_min",
    "min_observation_min",
    "baseline_sbp_tolerance_mmhg",
    "baseline_dbp_tolerance_mmhg",
    "discharge_bp_within_pct_of_baseline",
}
REPORTING_KEYS = {"infusion_buckets", "severe_event", "spc", "funnel", "bp_curve_bin_min", "cadss_max_infusion_number"}


class RulesConfigError(ValueError):
    """The safety rules file is invalid; the message names the key path."""


def load_rules(path: Path | str | None = None) -> SafetyRules:
    """Read, validate and resolve the rules file (the packaged default when `path` is None)."""
    source = Path(path) if path else DEFAULT_RULES
    text = source.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesConfigError(f"{source.name}: not valid YAML: {exc}") from exc
    try:
        return rules_from_mapping(raw, digest=hashlib.sha256(text.encode("utf-8")).hexdigest())
    except RulesConfigError as exc:
        raise RulesConfigError(f"{source.name}: {exc}") from None


def rules_from_mapping(raw: Any, digest: str = "") -> SafetyRules:
    top = _mapping(raw, "(top level)")
    _keys(top, {"defaults", "protocols", "reporting"}, "(top level)", required={"defaults"})
    defaults = _mapping(top["defaults"], "defaults")
    default = _protocol_rules("default", defaults, "defaults", required=True)
    protocols: dict[str, ProtocolRules] = {}
    for name, override in _mapping(top.get("protocols") or {}, "protocols").items():
        path = f"protocols.{name}"
        merged = _deep_merge(defaults, _mapping(override or {}, path), path)
        protocols[str(name)] = _protocol_rules(str(name), merged, path, required=True)
    reporting = _reporting(_mapping(top.get("reporting") or {}, "reporting"), default)
    return SafetyRules(default=default, protocols=protocols, reporting=reporting, digest=digest)


# --- structure ------------------------------------------------------------------------------------------


def _deep_merge(base: dict[str, Any], override: dict[str, Any], path: str) -> dict[str, Any]:
    """Override single keys of the defaults; an override may not introduce keys the defaults lack."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        key_path = f"{path}.{key}"
        if key not in PROTOCOL_KEYS and path.count(".") == 1:
            raise RulesConfigError(f"{key_path}: unknown key (expected one of {sorted(PROTOCOL_KEYS)})")
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value, key_path)
        else:
            merged[key] = value
    return merged


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RulesConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
    return value


def _keys(block: dict[str, Any], allowed: set[str], path: str, required: set[str] | None = None) -> None:
    for key in block:
        if key not in allowed:
            raise RulesConfigError(f"{path}.{key}: unknown key (expected one of {sorted(allowed)})")
    for key in sorted(required or set()):
        if key not in block:
            raise RulesConfigError(f"{path}.{key}: missing")


def _number(value: Any, path: str, *, minimum: float = 0.0, nullable: bool = False) -> float | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RulesConfigError(f"{path}: expected a number, got {value!r}")
    if value < minimum:
        raise RulesConfigError(f"{path}: must be >= {minimum}, got {value!r}")
    return float(value)


def _integer(value: Any, path: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RulesConfigError(f"{path}: expected an integer >= {minimum}, got {value!r}")
    return value


# --- sections --------------------------------------------------------------------------------------------


def _protocol_rules(name: str, block: dict[str, Any], path: str, *, required: bool) -> ProtocolRules:
    _keys(block, PROTOCOL_KEYS, path, required=PROTOCOL_KEYS if required else set())
    version = str(block["ctcae_version"])
    if version not in CTCAE_VERSIONS:
        raise RulesConfigError(f"{path}.ctcae_version: expected one of {list(CTCAE_VERSIONS)}, got {version!r}")
    rules_block = _mapping(block["reading_rules"], f"{path}.reading_rules")
    if not rules_block:
        raise RulesConfigError(f"{path}.reading_rules: no rules")
    reading_rules = tuple(
        _reading_rule(str(rule), _mapping(spec, f"{path}.reading_rules.{rule}"), f"{path}.reading_rules.{rule}")
        for rule, spec in rules_block.items()
    )
    return ProtocolRules(
        protocol=name,
        ctcae_version=version,
        induction_infusions=_integer(block["induction_infusions"], f"{path}.induction_infusions"),
        reading_rules=reading_rules,
        dissociation=_dissociation(_mapping(block["dissociation"], f"{path}.dissociation"), f"{path}.dissociation"),
        suicidality=_suicidality(_mapping(block["suicidality"], f"{path}.suicidality"), f"{path}.suicidality"),
        monitoring=_monitoring(_mapping(block["monitoring"], f"{path}.monitoring"), f"{path}.monitoring"),
    )


def _reading_rule(name: str, spec: dict[str, Any], path: str) -> ReadingRule:
    _keys(spec, READING_RULE_KEYS, path, required={"phase"})
    if spec["phase"] not in (PRE_DOSE, POST_DOSE):
        raise RulesConfigError(f"{path}.phase: expected {PRE_DOSE} or {POST_DOSE}, got {spec['phase']!r}")
    limits = {k: _number(spec.get(k), f"{path}.{k}", nullable=True) for k in LIMIT_KEYS}
    if all(v is None for v in limits.values()):
        raise RulesConfigError(f"{path}: needs at least one of {list(LIMIT_KEYS)}")
    consecutive = _integer(spec.get("consecutive", 1), f"{path}.consecutive")
    if spec["phase"] == PRE_DOSE and consecutive != 1:
        raise RulesConfigError(f"{path}.consecutive: a pre_dose rule reads one reading, got {consecutive}")
    term = spec.get("detected_term")
    if term is not None and term not in load_term_map().index:
        raise RulesConfigError(f"{path}.detected_term: {term!r} is not in code_maps/ae_body_systems.csv")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RulesConfigError(f"{path}.enabled: expected true or false, got {enabled!r}")
    return ReadingRule(
        name=name,
        phase=spec["phase"],
        consecutive=consecutive,
        max_minutes_apart=_number(spec.get("max_minutes_apart"), f"{path}.max_minutes_apart", nullable=True),
        detected_term=term,
        enabled=enabled,
        **limits,
    )


def _dissociation(block: dict[str, Any], path: str) -> DissociationRule:
    _keys(block, {"cadss_over", "discharge_timepoint"}, path, required={"cadss_over"})
    timepoint = block.get("discharge_timepoint", "discharge")
    if not isinstance(timepoint, str) or not timepoint:
        raise RulesConfigError(f"{path}.discharge_timepoint: expected a timepoint name, got {timepoint!r}")
    return DissociationRule(_number(block["cadss_over"], f"{path}.cadss_over") or 0.0, timepoint)


def _suicidality(block: dict[str, Any], path: str) -> SuicidalityRule:
    keys = {"phq9_item9_at_least", "cssrs_high_risk_questions"}
    _keys(block, keys, path, required=keys)
    item9 = _integer(block["phq9_item9_at_least"], f"{path}.phq9_item9_at_least")
    if item9 > 3:
        raise RulesConfigError(f"{path}.phq9_item9_at_least: item 9 is scored 0-3, got {item9}")
    questions = block["cssrs_high_risk_questions"]
    if not isinstance(questions, list) or not questions or any(q not in CSSRS_QUESTIONS for q in questions):
        raise RulesConfigError(f"{path}.cssrs_high_risk_questions: expected a list of {list(CSSRS_QUESTIONS)}")
    return SuicidalityRule(item9, tuple(questions))


def _monitoring(block: dict[str, Any], path: str) -> MonitoringRule:
    _keys(block, MONITORING_KEYS, path, required=MONITORING_KEYS)
    values = {k: _number(block[k], f"{path}.{k}", nullable=k == "min_observation_min") for k in sorted(MONITORING_KEYS)}
    return MonitoringRule(**values)  # type: ignore[arg-type]


def _reporting(block: dict[str, Any], default: ProtocolRules) -> ReportingRules:
    _keys(block, REPORTING_KEYS, "reporting")
    try:
        buckets = parse_buckets(list(block.get("infusion_buckets", ["1", "2", "3", "4-6", "7+"])))
    except (ValueError, TypeError) as exc:
        raise RulesConfigError(f"reporting.infusion_buckets: {exc}") from None
    severe = _mapping(block.get("severe_event") or {}, "reporting.severe_event")
    path = "reporting.severe_event"
    _keys(severe, {"serious", "min_ctcae_grade", "grade_exempt_terms", "reading_rules"}, path)
    known_rules = {r.name for r in default.reading_rules}
    for rule in severe.get("reading_rules", []):
        if rule not in known_rules:
            raise RulesConfigError(f"{path}.reading_rules: {rule!r} is not a rule in defaults.reading_rules")
    serious = severe.get("serious", True)
    if not isinstance(serious, bool):
        raise RulesConfigError(f"{path}.serious: expected true or false, got {serious!r}")
    spc = _mapping(block.get("spc") or {}, "reporting.spc")
    _keys(spc, {"sigma", "run_length"}, "reporting.spc")
    funnel = _mapping(block.get("funnel") or {}, "reporting.funnel")
    _keys(funnel, {"z_inner", "z_outer"}, "reporting.funnel")
    return ReportingRules(
        infusion_buckets=buckets,
        severe_event=SevereEventDefinition(
            serious=serious,
            min_ctcae_grade=_integer(severe.get("min_ctcae_grade", 3), f"{path}.min_ctcae_grade"),
            grade_exempt_terms=tuple(severe.get("grade_exempt_terms", [])),
            reading_rules=tuple(severe.get("reading_rules", [])),
        ),
        spc_sigma=_number(spc.get("sigma", 3), "reporting.spc.sigma", minimum=0.5) or 3.0,
        spc_run_length=_integer(spc.get("run_length", 8), "reporting.spc.run_length", minimum=2),
        funnel_z_inner=_number(funnel.get("z_inner", 1.959964), "reporting.funnel.z_inner", minimum=0.1) or 1.96,
        funnel_z_outer=_number(funnel.get("z_outer", 3.090232), "reporting.funnel.z_outer", minimum=0.1) or 3.09,
        bp_curve_bin_min=_integer(block.get("bp_curve_bin_min", 5), "reporting.bp_curve_bin_min"),
        cadss_max_infusion_number=_integer(
            block.get("cadss_max_infusion_number", 12), "reporting.cadss_max_infusion_number"
        ),
    )
