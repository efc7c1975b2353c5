"""Shared fixtures: synthetic clinic networks generated once per test session (real simulator output)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from clinic_pipeline.simulator.config import DEFAULT_CONFIG
from clinic_pipeline.simulator.runner import SimulationOptions, simulate


@dataclass(frozen=True)
class GeneratedNetwork:
    landing: Path
    truth_path: Path
    options: SimulationOptions

    @property
    def truth(self) -> dict[str, Any]:
        return json.loads(self.truth_path.read_text(encoding="utf-8"))

    @property
    def entered_adverse_events(self) -> list[dict[str, Any]]:
        """Adverse events already typed into the EHR (some are entered a day late)."""
        truth = self.truth
        return [e for e in truth["adverse_events"] if e["entered_day"] <= truth["last_day"]]

    @property
    def ehr_path(self) -> Path:
        return self.landing / "ehr.sqlite"


def config_with_batch_faults(root: Path, weight: float) -> Path:
    """The default network config with file-level faults made frequent enough to show up in a small network."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["faults"]["batch"] = dict.fromkeys(("truncated_file", "duplicate_batch", "undecodable_file"), weight)
    path = root / "network.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def generate(root: Path, **kw: Any) -> GeneratedNetwork:
    options = SimulationOptions(out=root / "landing", truth_out=root / "truth.json", **kw)
    simulate(options)
    return GeneratedNetwork(options.out, root / "truth.json", options)


@pytest.fixture(scope="session")
def small_network(tmp_path_factory: pytest.TempPathFactory) -> GeneratedNetwork:
    """3 clinics x 6 days, clean: format and contract checks."""
    return generate(tmp_path_factory.mktemp("small"), clinics=3, days=6, seed=11)


@pytest.fixture(scope="session")
def faulty_network(tmp_path_factory: pytest.TempPathFactory) -> GeneratedNetwork:
    """4 clinics x 6 days with a high fault rate: every fault kind shows up."""
    return generate(tmp_path_factory.mktemp("faulty"), clinics=4, days=6, seed=5, faults=0.12)


@pytest.fixture(scope="session")
def large_network(tmp_path_factory: pytest.TempPathFactory) -> GeneratedNetwork:
    """30 clinics x 30 days (~6,000 sessions): statistical checks against the configured rates."""
    return generate(tmp_path_factory.mktemp("large"), clinics=30, days=30, seed=3)
