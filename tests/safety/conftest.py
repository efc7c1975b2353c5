"""Simulated networks ingested into a lake and turned into safety marts, once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from clinic_pipeline.ingest.run import run_pipeline
from clinic_pipeline.lake import Lake
from clinic_pipeline.safety.marts import MartsSummary, build_marts
from clinic_pipeline.safety.staged_tables import read_staged
from tests.conftest import GeneratedNetwork, generate


@dataclass
class SafetyBuild:
    network: GeneratedNetwork
    lake_root: Path
    summary: MartsSummary

    @property
    def lake(self) -> Lake:
        return Lake(self.lake_root)

    def mart(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.lake_root / "marts" / f"{name}.parquet")

    def staged(self, table: str) -> pd.DataFrame:
        return read_staged(self.lake, table)


def ingest_and_build(network: GeneratedNetwork, root: Path) -> SafetyBuild:
    run_pipeline(network.landing, root / "lake", data_docs=False, workers=1)
    return SafetyBuild(network, root / "lake", build_marts(Lake(root / "lake")))


@pytest.fixture(scope="session")
def clean_build(tmp_path_factory: pytest.TempPathFactory) -> SafetyBuild:
    """6 clinics x 10 days, clean; seed 39 has every reading rule broken at least once and serious events."""
    root = tmp_path_factory.mktemp("safety_clean")
    return ingest_and_build(generate(root, clinics=6, days=10, seed=39), root)


@pytest.fixture(scope="session")
def faulty_build(faulty_network: GeneratedNetwork, tmp_path_factory: pytest.TempPathFactory) -> SafetyBuild:
    """The shared faulty network (every fault kind) through the ingest and the marts."""
    return ingest_and_build(faulty_network, tmp_path_factory.mktemp("safety_faulty"))
