"""The committed GX File Data Context is exactly what the rules module builds, and every rule is documented."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from clinic_pipeline.quality.suite_rules import EXPECTATIONS_ROOT, SUITES, build_context

REQUIRED_META = {"rule", "category", "severity", "threshold_pct", "reason"}


def _suites(root: Path) -> dict[str, list[dict]]:
    suites = {}
    for path in sorted((root / "gx" / "expectations").glob("*.json")):
        data = json.loads(path.read_text())
        suites[data["name"]] = [{k: v for k, v in e.items() if k != "id"} for e in data["expectations"]]
    return suites


def test_committed_suites_match_the_rules_module(tmp_path):
    shutil.copytree(EXPECTATIONS_ROOT / "gx", tmp_path / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    build_context(tmp_path)
    assert _suites(tmp_path) == _suites(EXPECTATIONS_ROOT)
    assert set(_suites(EXPECTATIONS_ROOT)) == {f"{t}_suite" for t in SUITES}


def test_every_expectation_has_category_severity_threshold_and_reason():
    for name, expectations in _suites(EXPECTATIONS_ROOT).items():
        assert expectations, name
        for expectation in expectations:
            meta = expectation["meta"]
            assert set(meta) >= REQUIRED_META, (name, expectation["type"])
            assert meta["category"] in {"conformance", "completeness", "plausibility"}
            assert meta["severity"] in {"critical", "warning"} and len(meta["reason"]) > 15
            assert 0 <= meta["threshold_pct"] <= 100
    checkpoint = json.loads((EXPECTATIONS_ROOT / "gx" / "checkpoints" / "vital_signs_checkpoint.json").read_text())
    assert checkpoint["result_format"]["unexpected_index_column_names"] == ["control_id", "batch_id"]
