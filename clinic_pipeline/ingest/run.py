"""The whole ingest in-process over a landing zone (no scheduler): for demos, backfills and benchmarks.

Order matters once: the EHR first, so that readings, questionnaires and ratings find their sessions and
patients. The same functions run inside the Airflow tasks.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from clinic_pipeline.ingest.ehr_source import ingest_ehr
from clinic_pipeline.ingest.file_sources import DEFAULT_CHUNK_BATCHES, ingest_file_source
from clinic_pipeline.ingest.outcome import BatchReport
from clinic_pipeline.lake import Lake
from clinic_pipeline.quality.gates import build_data_docs

log = logging.getLogger("clinic_pipeline.ingest")


@dataclass
class RunSummary:
    reports: list[BatchReport] = field(default_factory=list)
    reconciliation_path: Path | None = None
    data_docs: Path | None = None

    @property
    def unreconciled(self) -> list[BatchReport]:
        return [r for r in self.reports if not r.reconciled]

    @property
    def gate_failures(self) -> list[BatchReport]:
        return [r for r in self.reports if r.status == "gate_failed"]

    @property
    def ok(self) -> bool:
        return not self.unreconciled and not self.gate_failures


def default_ehr_url(landing: Path) -> str:
    return f"sqlite:///{(landing / 'ehr.sqlite').resolve()}"


def write_reconciliation(lake: Lake) -> Path:
    """All per-batch reconciliation records of the lake in one file (quality/reconciliation.json)."""
    records = [lake.read_json(p) for p in sorted(lake.path("quality", "reconciliation").rglob("*.json"))]
    target = lake.path("quality", "reconciliation.json")
    lake.write_json(target, {"batches": records, "all_reconciled": all(r["reconciled"] for r in records)})
    return Path(str(target))


def run_pipeline(
    landing: Path,
    lake_root: Path | str,
    *,
    ehr_url: str | None = None,
    now: dt.datetime | None = None,
    chunk_batches: int = DEFAULT_CHUNK_BATCHES,
    data_docs: bool = True,
    workers: int = 2,
) -> RunSummary:
    lake = Lake(lake_root)
    summary = RunSummary()
    report = ingest_ehr(ehr_url or default_ehr_url(landing), landing, lake, now=now or dt.datetime.now(dt.UTC))
    if report is not None:
        summary.reports.append(report)
    summary.reports += _ingest_file_sources(landing, lake, chunk_batches, workers)
    summary.reconciliation_path = write_reconciliation(lake)
    if data_docs and summary.reports:
        summary.data_docs = build_data_docs(lake.quality_dir)
    return summary


# Sources are independent once the EHR is in: monitors in one process, the questionnaire sources in another.
# (Within a source, batches stay in order in one process: duplicate re-deliveries are recognised by content.)
SOURCE_GROUPS = (("monitor",), ("epro", "redcap"))


def _ingest_group(sources: tuple[str, ...], landing: Path, lake_root: str, chunk_batches: int) -> list[BatchReport]:
    lake = Lake(lake_root)
    return [r for source in sources for r in ingest_file_source(source, landing, lake, chunk_batches=chunk_batches)]


def _ingest_file_sources(landing: Path, lake: Lake, chunk_batches: int, workers: int) -> list[BatchReport]:
    root = str(lake.root)
    if workers <= 1:
        return [r for group in SOURCE_GROUPS for r in _ingest_group(group, landing, root, chunk_batches)]
    # fork: the children inherit the already imported pandas / great_expectations (10 s of imports each)
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(workers, len(SOURCE_GROUPS)), mp_context=context) as pool:
        futures = [pool.submit(_ingest_group, group, landing, root, chunk_batches) for group in SOURCE_GROUPS]
        return [r for future in futures for r in future.result()]


def reconciliation_table(reports: list[BatchReport]) -> str:
    """A short per-source table of the run (and every batch that needs attention)."""
    lines = [f"{'source':<8} {'batches':>7} {'rows in':>9} {'staged':>9} {'quarantined':>11} {'dup':>4} {'status':<10}"]
    by_source: dict[str, list[BatchReport]] = {}
    for r in reports:
        by_source.setdefault(r.source, []).append(r)
    for source, group in by_source.items():
        bad = [r for r in group if not r.reconciled or r.status == "gate_failed"]
        lines.append(
            f"{source:<8} {len(group):>7} {sum(r.rows_in for r in group):>9} {sum(r.rows_staged for r in group):>9} "
            f"{sum(r.rows_quarantined for r in group):>11} {sum(r.status == 'duplicate' for r in group):>4} "
            f"{'OK' if not bad else 'ATTENTION':<10}"
        )
    for r in reports:
        if not r.reconciled or r.status in ("gate_failed", "file_quarantined"):
            note = "NOT RECONCILED" if not r.reconciled else r.status
            lines.append(f"  {r.batch_id}: {note}: {r.reason or ''}")
    return "\n".join(lines)
