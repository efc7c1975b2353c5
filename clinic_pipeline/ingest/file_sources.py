"""Ingest the file-based clinic systems (monitors, patient app, REDCap), batch by batch, in bounded chunks.

raw landing -> file checks -> parse (per record) -> reference checks -> GX gate -> staged + quarantine.
Memory is bounded by `chunk_batches` (the chunk is validated in one GX call), never by the history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from clinic_pipeline.ingest.landing import LandedBatch, RawLanding, land_raw, pending_batches, remember_content
from clinic_pipeline.ingest.outcome import BatchReport, finish_batch
from clinic_pipeline.ingest.references import load_references
from clinic_pipeline.lake import Lake
from clinic_pipeline.quality.gates import validate_staged
from transforms import epro_questionnaires, monitor_hl7, redcap_ratings
from transforms.linking import EhrReferences, Linked, link_to_patients, link_to_sessions
from transforms.quarantine import QuarantineRecord

log = logging.getLogger("clinic_pipeline.ingest")


# Batches validated together: bounds memory (a chunk of 300 clinic-day monitor batches is ~32k readings) while
# keeping the fixed cost of a GX run (~0.7 s) small per row.
DEFAULT_CHUNK_BATCHES = 300


@dataclass
class Parsed:
    rows: list[dict[str, Any]]
    rejected: list[QuarantineRecord]
    rows_in: int
    conversions: dict[str, int]


@dataclass(frozen=True)
class FileSource:
    name: str
    table: str
    key: str
    parse: Callable[[bytes, LandedBatch, EhrReferences], Parsed]
    link: Callable[[pd.DataFrame, EhrReferences], Linked]
    count_records: Callable[[bytes], int]


def _parse_monitor(data: bytes, batch: LandedBatch, refs: EhrReferences) -> Parsed:
    parsed = monitor_hl7.parse_monitor_batch(data, batch.batch_id)
    return Parsed(parsed.readings, parsed.rejected, parsed.messages_in, parsed.conversions)


def _parse_epro(data: bytes, batch: LandedBatch, refs: EhrReferences) -> Parsed:
    parsed = epro_questionnaires.parse_epro_batch(data, batch.batch_id)
    return Parsed(parsed.responses, parsed.rejected, parsed.lines_in, {})


def _parse_redcap(data: bytes, batch: LandedBatch, refs: EhrReferences) -> Parsed:
    timezone = refs.clinic_timezone(batch.clinic_id or "")
    if timezone is None:
        raise FileRejected("clinic_unknown", f"clinic {batch.clinic_id} has no time zone in the EHR yet")
    parsed = redcap_ratings.parse_rating_batch(data, batch.batch_id, timezone)
    return Parsed(parsed.ratings, parsed.rejected, parsed.rows_in, {})


class FileRejected(Exception):
    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule, self.reason = rule, reason


SOURCES = {
    "monitor": FileSource(
        "monitor",
        "vital_signs",
        "control_id",
        _parse_monitor,
        lambda rows, refs: link_to_sessions(rows, refs, "control_id", "monitor", "observed_at"),
        lambda data: len(monitor_hl7.split_messages(data)),
    ),
    "epro": FileSource(
        "epro",
        "questionnaire_responses",
        "questionnaire_id",
        _parse_epro,
        lambda rows, refs: link_to_patients(rows, refs, "questionnaire_id", "epro"),
        lambda data: sum(1 for line in data.split(b"\n") if line.strip()),
    ),
    "redcap": FileSource(
        "redcap",
        "clinician_ratings",
        "rating_key",
        _parse_redcap,
        lambda rows, refs: link_to_sessions(rows, refs, "rating_key", "redcap", "rated_at"),
        lambda data: max(0, len(data.decode("utf-8", errors="replace").strip().splitlines()) - 1),
    ),
}


def file_problem(source: FileSource, data: bytes, declared: int | None) -> str | None:
    """Why the whole file cannot be read record by record (it is then quarantined whole), or None."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4096]:
        return "file is UTF-16 or binary, not the UTF-8 text the contract requires"
    if source.name == "monitor":
        return monitor_hl7.file_problem(data, declared)
    found = source.count_records(data)
    if declared is not None and found != declared:
        return f"marker declares {declared} records but the file holds {found}: truncated or padded"
    return None


def _whole_file_quarantine(batch: LandedBatch, raw: RawLanding, rule: str, reason: str) -> list[QuarantineRecord]:
    rows = batch.declared_records or 1
    paths = ", ".join(raw.files) or "(no file)"
    return [
        QuarantineRecord(
            batch.batch_id,
            batch.source,
            batch.batch_id,
            rule,
            "critical",
            f"{reason}; the whole file is held",
            paths,
            row_count=rows,
        )
    ]


def ingest_file_source(
    source_name: str,
    landing: Path,
    lake: Lake,
    *,
    chunk_batches: int = DEFAULT_CHUNK_BATCHES,
    ehr_through: str | None = None,
    wait_for_ehr: bool = False,
) -> list[BatchReport]:
    """Process every pending batch of a source. With `wait_for_ehr`, batches of a service date the EHR has
    not been ingested through yet wait for a later run (their sessions may not be known yet)."""
    source = SOURCES[source_name]
    pending = pending_batches(landing, lake, source_name)
    if wait_for_ehr:
        waiting = [b for b in pending if ehr_through is None or b.service_date > ehr_through]
        if waiting:
            log.info("%d %s batches wait for the EHR (ingested through %s)", len(waiting), source_name, ehr_through)
        pending = [b for b in pending if b not in waiting]
    reports: list[BatchReport] = []
    refs = load_references(lake) if pending else None
    for start in range(0, len(pending), chunk_batches):
        reports += _ingest_chunk(source, pending[start : start + chunk_batches], landing, lake, refs)
    return reports


def _ingest_chunk(
    source: FileSource, batches: list[LandedBatch], landing: Path, lake: Lake, refs: EhrReferences
) -> list[BatchReport]:
    reports, open_batches, rows = _read_chunk(source, batches, landing, lake, refs)
    # One reference join and one GX validation for the whole chunk: per-batch calls cost ~40 ms and ~0.7 s.
    linked = source.link(pd.DataFrame(rows), refs) if rows else Linked(pd.DataFrame())
    if not linked.rows.empty:
        linked.rows["clinic_id"] = linked.rows["batch_id"].map({b.batch_id: b.clinic_id for b, *_ in open_batches})
    candidates = linked.rows if not linked.rows.empty else pd.DataFrame(columns=["batch_id", "raw_record", source.key])
    gate = validate_staged(source.table, source.name, candidates, lake.quality_dir)
    held: dict[str, list[QuarantineRecord]] = {}
    for record in [*linked.rejected, *gate.rejected]:
        held.setdefault(record.batch_id, []).append(record)
    table, slices = _batch_slices(gate.staged)
    for batch, raw, report, rejected in open_batches:
        start, length = slices.get(batch.batch_id, (0, 0))
        report.rows_staged = length
        if batch.batch_id in gate.failed_batches:
            report.status, report.reason = "gate_failed", gate.failed_batches[batch.batch_id]
        target = lake.staged_file(source.table, batch.clinic_id or "none", batch.service_date, batch.batch_id)
        staged = table.slice(start, length) if length else None
        reports.append(finish_batch(lake, report, rejected + held.get(batch.batch_id, []), [(target, staged)]))
        remember_content(lake, batch, raw)
    return reports


def _read_chunk(
    source: FileSource, batches: list[LandedBatch], landing: Path, lake: Lake, refs: EhrReferences
) -> tuple[list[BatchReport], list[tuple], list[dict[str, Any]]]:
    """Land and parse each batch. Duplicates and unreadable files are finished here; the rest stay open."""
    reports: list[BatchReport] = []
    open_batches: list[tuple] = []
    rows: list[dict[str, Any]] = []
    for batch in batches:
        report = BatchReport(
            source.name, batch.batch_id, "ingested", service_date=batch.service_date, clinic_id=batch.clinic_id
        )
        raw = land_raw(landing, lake, batch)
        if not raw.duplicate_of and not raw.problems:  # a re-delivery inside the same chunk
            raw.duplicate_of = next(
                (b.batch_id for b, r, *_ in open_batches if r.content_sha256 == raw.content_sha256), None
            )
        if raw.duplicate_of:
            report.status, report.duplicate_of = "duplicate", raw.duplicate_of
            report.reason = f"same content as batch {raw.duplicate_of}: nothing to do"
            reports.append(finish_batch(lake, report, [], []))
            continue
        data = b"".join(raw.files.values())
        problem = "; ".join(raw.problems) or file_problem(source, data, batch.declared_records)
        parsed = None
        if problem is None:
            try:
                parsed = source.parse(data, batch, refs)
            except FileRejected as exc:
                problem = exc.reason
        if parsed is None:
            rule = "file_checksum_mismatch" if raw.problems else "file_unreadable"
            report.status, report.reason = "file_quarantined", problem
            report.rows_in = batch.declared_records or 1
            reports.append(finish_batch(lake, report, _whole_file_quarantine(batch, raw, rule, problem), []))
            continue
        report.rows_in, report.conversions = parsed.rows_in, parsed.conversions
        rows.extend(parsed.rows)
        open_batches.append((batch, raw, report, parsed.rejected))
    return reports, open_batches, rows


def _batch_slices(staged: pd.DataFrame) -> tuple[Any, dict[str, tuple[int, int]]]:
    """The chunk as one Arrow table sorted by batch, and each batch's (offset, length) in it: converting once
    and writing slices saves ~3 ms a batch over converting every batch's DataFrame."""
    if staged.empty:
        return None, {}
    ordered = staged.sort_values("batch_id", kind="stable")
    counts = ordered["batch_id"].value_counts(sort=False).to_dict()
    slices, start = {}, 0
    for batch_id in dict.fromkeys(ordered["batch_id"]):
        slices[batch_id] = (start, counts[batch_id])
        start += counts[batch_id]
    return pa.Table.from_pandas(ordered, preserve_index=False), slices
