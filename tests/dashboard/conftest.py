"""A published dashboard of the shared clean network (tests/safety: 6 clinics x 10 days), built once.

`clean_build` is the safety tests' session fixture (network, ingest, marts); the dashboard is published into
its lake. Helpers read what a reader gets: the data embedded in index.html and the CSVs.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from clinic_pipeline.dashboard import publish_dashboard
from clinic_pipeline.lake import Lake
from tests.safety.conftest import SafetyBuild, clean_build  # noqa: F401  (the fixture, reused)

RUN_ID = "test-run-1"
DATA_PATTERN = re.compile(r'<script id="dashboard-data" type="application/json">(.*?)</script>', re.S)


def embedded_data(html: str) -> dict[str, Any]:
    """The JSON the page draws everything from."""
    match = DATA_PATTERN.search(html)
    assert match, "index.html has no embedded data"
    return json.loads(match.group(1))


@dataclass
class PublishedDashboard:
    build: SafetyBuild
    index: Path

    @property
    def lake(self) -> Lake:
        return self.build.lake

    @property
    def folder(self) -> Path:
        return self.index.parent

    @property
    def html(self) -> str:
        return self.index.read_text(encoding="utf-8")

    @property
    def data(self) -> dict[str, Any]:
        return embedded_data(self.html)

    def csv(self, name: str) -> pd.DataFrame:
        """A CSV as text cells (what a spreadsheet would read), empty cells as ""."""
        body = (self.folder / "csv" / f"{name}.csv").read_text(encoding="utf-8")
        return pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False)

    def csv_names(self) -> list[str]:
        return sorted(p.stem for p in (self.folder / "csv").glob("*.csv"))

    def table(self, name: str) -> pd.DataFrame:
        """A table of the page data as a DataFrame (None where suppressed or withheld)."""
        table = self.data["tables"][name]
        return pd.DataFrame(table["rows"], columns=table["columns"], dtype=object)


@pytest.fixture(scope="session")
def dashboard(clean_build: SafetyBuild) -> PublishedDashboard:  # noqa: F811
    index = publish_dashboard(clean_build.lake, RUN_ID)
    return PublishedDashboard(clean_build, Path(str(index)))
