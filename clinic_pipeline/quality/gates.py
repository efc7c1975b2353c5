"""Quality gates: run a staged table's GX checkpoint and turn the result into quarantine and flags.

GX's suite `success` ignores severity, so the decision is ours, per expectation and per batch (OHDSI DQD):
- critical: the failing rows (found by their row key, `unexpected_index_column_names`) go to quarantine;
  when more than `threshold_pct` % of a batch's rows fail, the whole batch is stopped: nothing from it is
  published and the run ends red;
- warning: the failing rows are staged with the rule in `quality_flags`.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinic_pipeline.quality.suite_rules import EXPECTATIONS_ROOT, SUITES
from transforms.quarantine import QuarantineRecord


@dataclass
class GateOutcome:
    staged: Any  # DataFrame of rows that passed (with quality_flags)
    rejected: list[QuarantineRecord] = field(default_factory=list)
    failed_batches: dict[str, str] = field(default_factory=dict)  # batch id -> why it was stopped
    checks: list[dict[str, Any]] = field(default_factory=list)  # one summary per expectation


@functools.cache
def _context(quality_dir: str) -> Any:
    os.environ["CLINIC_QUALITY_DIR"] = quality_dir
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(EXPECTATIONS_ROOT))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def build_data_docs(quality_dir: Path) -> Path:
    context = _context(str(quality_dir))
    context.build_data_docs(site_names=["clinic_quality"])
    return quality_dir / "data_docs" / "index.html"


def _describe(item: dict[str, Any], key: str) -> str:
    values = [f"{k}={v}" for k, v in item.items() if k not in (key, "batch_id")]
    return ", ".join(values)


def validate_staged(table: str, source: str, frame: Any, quality_dir: Path) -> GateOutcome:
    """Validate `frame` (rows of many batches, with `batch_id` and `raw_record`) against the table's suite."""
    key, _rules = SUITES[table]
    if frame.empty:
        return GateOutcome(staged=frame.assign(quality_flags=""))
    checkpoint = _context(str(quality_dir)).checkpoints.get(f"{table}_checkpoint")
    result = checkpoint.run(batch_parameters={"dataframe": frame.drop(columns=["raw_record"])})
    (validation,) = result.run_results.values()
    batch_size = frame.groupby("batch_id").size().to_dict()
    batches_of_key: dict[Any, list[str]] = defaultdict(list)  # some expectations report the key alone
    for k, b in zip(frame[key], frame["batch_id"], strict=True):
        batches_of_key[k].append(b)
    # Rows are identified by (row key, batch): the same key may legitimately sit in two batches of a chunk.
    critical: dict[tuple[str, str], tuple[str, str]] = {}
    warnings: dict[tuple[str, str], list[str]] = defaultdict(list)
    failed: dict[str, str] = {}
    outcome = GateOutcome(staged=None)
    for check in validation.results:
        meta = check.expectation_config.meta
        unexpected = check.result.get("unexpected_index_list") or []
        outcome.checks.append(
            {
                "table": table,
                "rule": meta["rule"],
                "category": meta["category"],
                "severity": meta["severity"],
                "threshold_pct": meta["threshold_pct"],
                "success": bool(check.success),
                "failed_rows": len(unexpected),
                "exception": (check.exception_info or {}).get("exception_message"),
            }
        )
        if check.success:
            continue
        if not unexpected:  # a table-level failure (or an error inside GX): nothing in this chunk can pass
            reason = f"{meta['rule']} failed for the whole table: {outcome.checks[-1]['exception'] or 'no row keys'}"
            failed.update(dict.fromkeys(batch_size, reason))
            continue
        rows = [
            (item[key], batch)
            for item in unexpected
            for batch in ([item["batch_id"]] if "batch_id" in item else batches_of_key[item[key]])
        ]
        unexpected = [
            item
            for item in unexpected
            for _ in ([item["batch_id"]] if "batch_id" in item else batches_of_key[item[key]])
        ]
        if meta["severity"] == "warning":
            for row in rows:
                warnings[row].append(meta["rule"])
            continue
        per_batch: dict[str, int] = defaultdict(int)
        for item, row in zip(unexpected, rows, strict=True):
            critical.setdefault(row, (meta["rule"], f"{_describe(item, key)}: {meta['reason']}"))
            per_batch[row[1]] += 1
        for batch_id, count in per_batch.items():
            pct = 100.0 * count / batch_size[batch_id]
            if pct > meta["threshold_pct"] and batch_id not in failed:
                failed[batch_id] = (
                    f"{pct:.1f}% of the batch's {table} rows break {meta['rule']} "
                    f"(threshold {meta['threshold_pct']}%): nothing from this batch is published"
                )
    pairs = list(zip(frame[key], frame["batch_id"], strict=True))
    for row, raw in zip(pairs, frame["raw_record"], strict=True):
        if row[1] in failed:
            outcome.rejected.append(
                QuarantineRecord(row[1], source, str(row[0]), "batch_gate_failed", "critical", failed[row[1]], raw)
            )
        elif row in critical:
            rule, reason = critical[row]
            outcome.rejected.append(QuarantineRecord(row[1], source, str(row[0]), rule, "critical", reason, raw))
    keep = [row not in critical and row[1] not in failed for row in pairs]
    staged = frame[keep].drop(columns=["raw_record"])
    flags = [",".join(warnings.get(row, [])) for row in zip(staged[key], staged["batch_id"], strict=True)]
    outcome.staged = staged.assign(quality_flags=flags)
    outcome.failed_batches = failed
    return outcome
