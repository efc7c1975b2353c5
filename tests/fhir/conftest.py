"""Networks ingested once per test session, for the FHIR tests to export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from clinic_pipeline.ingest.run import run_pipeline
from clinic_pipeline.lake import Lake
from clinic_pipeline.simulator.truth import GroundTruth
from tests.conftest import GeneratedNetwork
from tests.fhir_server.fixtures import fault_proxy, fhir_server, fresh_fhir_server

__all__ = ["fault_proxy", "fhir_server", "fresh_fhir_server"]


@dataclass
class Ingested:
    network: GeneratedNetwork
    root: Path

    @property
    def lake(self) -> Lake:
        return Lake(self.root)

    @property
    def truth(self) -> GroundTruth:
        return GroundTruth.load(self.network.truth_path)


def _ingest(network: GeneratedNetwork, root: Path) -> Ingested:
    summary = run_pipeline(network.landing, root, data_docs=False)
    assert summary.ok
    return Ingested(network, root)


@pytest.fixture(scope="session")
def clean_ingested(small_network, tmp_path_factory) -> Ingested:
    return _ingest(small_network, tmp_path_factory.mktemp("fhir-clean") / "lake")


@pytest.fixture(scope="session")
def faulty_ingested(faulty_network, tmp_path_factory) -> Ingested:
    return _ingest(faulty_network, tmp_path_factory.mktemp("fhir-faulty") / "lake")
