"""The safety rules as typed values: what the safety transforms evaluate.

Built from `clinic_pipeline/safety/safety_rules.yaml` by `clinic_pipeline.safety.rules.load_rules` (which
validates it); tests build them directly. Kept here, not in the loader, so that the transforms stay free of
the application package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PRE_DOSE, POST_DOSE = "pre_dose", "post_dose"
DEFAULT_PROTOCOL = "default"  # the rules applied to a session whose protocol is unknown or not configured


@dataclass(frozen=True)
class ReadingRule:
    """A reading-level threshold rule: a breach when any configured limit is crossed (strictly)."""

    name: str
    phase: str  # PRE_DOSE (last reading before dosing) or POST_DOSE (every reading from minute 0)
    sbp_over: float | None = None
    dbp_over: float | None = None
    hr_over: float | None = None
    spo2_under: float | None = None
    consecutive: int = 1
    max_minutes_apart: float | None = None
    detected_term: str | None = None  # the vitals-detected adverse event this rule yields, if any
    enabled: bool = True


@dataclass(frozen=True)
class DissociationRule:
    cadss_over: float
    discharge_timepoint: str = "discharge"


@dataclass(frozen=True)
class SuicidalityRule:
    phq9_item9_at_least: int
    cssrs_high_risk_questions: tuple[str, ...]


@dataclass(frozen=True)
class MonitoringRule:
    predose_reading_within_min: float
    reading_near_min: float
    reading_near_tolerance_min: float
    reading_before_discharge_within_min: float
    max_gap_during_infusion_min: float
    max_reading_gap_min: float
    min_observation_min: float | None
    baseline_sbp_tolerance_mmhg: float
    baseline_dbp_tolerance_mmhg: float
    discharge_bp_within_pct_of_baseline: float


@dataclass(frozen=True)
class ProtocolRules:
    protocol: str
    ctcae_version: str
    induction_infusions: int
    reading_rules: tuple[ReadingRule, ...]
    dissociation: DissociationRule
    suicidality: SuicidalityRule
    monitoring: MonitoringRule

    def rule(self, name: str) -> ReadingRule:
        return next(r for r in self.reading_rules if r.name == name)


@dataclass(frozen=True)
class InfusionBucket:
    label: str
    first: int
    last: int | None  # None = open-ended ("7+")


@dataclass(frozen=True)
class SevereEventDefinition:
    serious: bool
    min_ctcae_grade: int
    grade_exempt_terms: tuple[str, ...]
    reading_rules: tuple[str, ...]


@dataclass(frozen=True)
class ReportingRules:
    infusion_buckets: tuple[InfusionBucket, ...]
    severe_event: SevereEventDefinition
    spc_sigma: float = 3.0
    spc_run_length: int = 8
    funnel_z_inner: float = 1.959964
    funnel_z_outer: float = 3.090232
    bp_curve_bin_min: int = 5
    cadss_max_infusion_number: int = 12


@dataclass(frozen=True)
class SafetyRules:
    default: ProtocolRules
    protocols: dict[str, ProtocolRules] = field(default_factory=dict)
    reporting: ReportingRules = field(
        default_factory=lambda: ReportingRules(
            infusion_buckets=parse_buckets(["1", "2", "3", "4-6", "7+"]),
            severe_event=SevereEventDefinition(True, 3, ("hypertension",), ()),
        )
    )
    digest: str = ""  # sha256 of the configuration text, recorded in the marts manifest

    def for_protocol(self, protocol: str | None) -> ProtocolRules:
        return self.protocols.get(protocol or "", self.default)

    def all_protocols(self) -> dict[str, ProtocolRules]:
        """Every configured protocol plus the default (keyed DEFAULT_PROTOCOL)."""
        return {DEFAULT_PROTOCOL: self.default, **self.protocols}

    def rule_key(self, protocols: pd.Series) -> pd.Series:
        """The rules key of each row (categorical): its protocol when configured, else DEFAULT_PROTOCOL."""
        known = protocols.isin(list(self.protocols))
        keys = protocols.where(known, DEFAULT_PROTOCOL).astype(object)
        return pd.Series(pd.Categorical(keys, categories=list(self.all_protocols())), index=protocols.index)

    def per_key(self, keys: pd.Series, values: dict[str, object]) -> np.ndarray:
        """Look a per-protocol value up for each row of a categorical `rule_key` column (vectorized)."""
        categories = list(keys.cat.categories)
        table = np.array([values.get(c) for c in categories], dtype=object)
        return table[keys.cat.codes.to_numpy()]


def parse_buckets(labels: list[str]) -> tuple[InfusionBucket, ...]:
    """ "1", "4-6", "7+" -> buckets; they must cover 1.. without gaps and end open-ended."""
    buckets: list[InfusionBucket] = []
    expected = 1
    for i, label in enumerate(labels):
        text = str(label).strip()
        if text.endswith("+"):
            first, last = int(text[:-1]), None
            if i != len(labels) - 1:
                raise ValueError(f"bucket {text!r}: an open-ended bucket must be the last one")
        elif "-" in text:
            lo, hi = text.split("-", 1)
            first, last = int(lo), int(hi)
        else:
            first = last = int(text)
        if first != expected or (last is not None and last < first):
            raise ValueError(f"bucket {text!r}: buckets must cover infusion numbers from 1 without gaps")
        buckets.append(InfusionBucket(text, first, last))
        expected = (last or first) + 1
    if not buckets or buckets[-1].last is not None:
        raise ValueError("the last infusion bucket must be open-ended, e.g. '7+'")
    return tuple(buckets)


def infusion_bucket(infusion_numbers: pd.Series, buckets: tuple[InfusionBucket, ...]) -> pd.Series:
    """Bucket label of each infusion number ("unknown" when missing)."""
    numbers = pd.to_numeric(infusion_numbers, errors="coerce")
    edges = [b.first for b in buckets]
    codes = pd.cut(numbers, bins=[*edges, float("inf")], right=False, labels=[b.label for b in buckets])
    return codes.astype(object).where(codes.notna(), "unknown").astype(str)
