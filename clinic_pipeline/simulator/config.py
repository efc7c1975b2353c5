"""Load the clinic network configuration (rates, distributions, thresholds with their sources)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = Path(__file__).with_name("clinic_network.yaml")


def load_network_config(path: Path | None = None) -> dict[str, Any]:
    """Read the YAML config; `path` overrides the packaged default."""
    return yaml.safe_load((path or DEFAULT_CONFIG).read_text(encoding="utf-8"))


def config_fingerprint(path: Path | None = None) -> str:
    """sha256 of the config text, recorded in the ground truth so a result names the rates it used."""
    return hashlib.sha256((path or DEFAULT_CONFIG).read_bytes()).hexdigest()


def rate_for_infusion(rates: dict[str, float], infusion_number: int) -> float:
    """Pick the first-infusion or later-infusion probability from a `{first, later}` pair."""
    return rates["first"] if infusion_number == 1 else rates["later"]
