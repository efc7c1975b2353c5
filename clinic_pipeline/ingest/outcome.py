"""How a batch ends: staged rows, quarantined rows, its reconciliation record and its ledger entry.

Written in that order, so a crash leaves the batch out of the ledger and the next run redoes it, replacing
(never appending to) the files the first attempt wrote.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from clinic_pipeline.lake import Lake
from transforms.quarantine import QuarantineRecord, quarantine_table

log = logging.getLogger("clinic_pipeline.ingest")


@dataclass
class BatchReport:
    source: str
    batch_id: str
    status: str  # ingested | file_quarantined | duplicate | gate_failed
    rows_in: int = 0
    rows_staged: int = 0
    rows_quarantined: int = 0
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    conversions: dict[str, int] = field(default_factory=dict)
    duplicate_of: str | None = None
    reason: str | None = None
    service_date: str | None = None
    clinic_id: str | None = None

    @property
    def reconciled(self) -> bool:
        return self.rows_in == self.rows_staged + self.rows_quarantined

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reconciled": self.reconciled}


def count_quarantined(records: list[QuarantineRecord]) -> tuple[int, dict[str, int]]:
    by_rule: Counter[str] = Counter()
    for r in records:
        by_rule[r.rule] += r.row_count
    return sum(by_rule.values()), dict(sorted(by_rule.items()))


def finish_batch(
    lake: Lake, report: BatchReport, quarantine: list[QuarantineRecord], staged_writes: list[tuple[Any, Any]]
) -> BatchReport:
    """Write staged parts, then quarantine, then reconciliation, then the ledger entry (the commit point)."""
    for target, frame in staged_writes:
        rows = 0 if frame is None else (frame.num_rows if hasattr(frame, "num_rows") else len(frame))
        if rows:
            lake.write_parquet(target, frame)
        elif target.exists():  # a rerun that now stages nothing must not leave the old part behind
            target.unlink()
    qfile = lake.quarantine_file(report.source, report.batch_id)
    if quarantine:
        lake.write_parquet(qfile, quarantine_table(quarantine))
    elif qfile.exists():
        qfile.unlink()
    report.rows_quarantined, report.quarantined_by_rule = count_quarantined(quarantine)
    lake.write_json(lake.reconciliation_file(report.source, report.batch_id), report.as_dict())
    lake.write_json(lake.ledger_file(report.source, report.batch_id), {"status": report.status})
    level = logging.INFO if report.reconciled and report.status != "gate_failed" else logging.ERROR
    log.log(
        level,
        "batch %s (%s): %s, rows in %d = staged %d + quarantined %d%s%s",
        report.batch_id,
        report.source,
        report.status,
        report.rows_in,
        report.rows_staged,
        report.rows_quarantined,
        f"; quarantined by rule {report.quarantined_by_rule}" if report.quarantined_by_rule else "",
        f"; unit conversions {report.conversions}" if report.conversions else "",
    )
    return report
