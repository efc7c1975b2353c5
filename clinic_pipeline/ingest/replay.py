"""Replay quarantined rows after a fix (a corrected EHR row, a new code map, a reviewed threshold).

Each selected record goes through the same parse, reference checks and quality gate as on first ingest.
Rows that now pass are staged in their original batch; rows that still fail stay in that batch's quarantine
with their (possibly new) rule. The original batch's reconciliation is rewritten, so rows in = staged +
quarantined still holds per batch, and a replay log in `quality/replays/` records what moved. Replaying
twice changes nothing the second time. Duplicates (severity info) and whole files are not replayed: a file
is fixed by re-delivering it under a new batch id.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from clinic_pipeline.ingest.file_sources import SOURCES
from clinic_pipeline.ingest.landing import LandedBatch
from clinic_pipeline.ingest.references import load_references
from clinic_pipeline.lake import Lake
from clinic_pipeline.quality.gates import validate_staged
from transforms import ehr_staging
from transforms.linking import Linked
from transforms.quarantine import QuarantineRecord, quarantine_frame

log = logging.getLogger("clinic_pipeline.ingest")


@dataclass
class ReplaySummary:
    batches: int = 0
    replayed: int = 0
    staged: int = 0
    still_quarantined: int = 0
    by_batch: dict[str, dict[str, int]] = field(default_factory=dict)


def _replayable(frame: pd.DataFrame, rule: str | None) -> pd.Series:
    mask = (frame["severity"] != "info") & (frame["row_count"] == 1) & ~frame["rule"].str.startswith("file_")
    if rule:
        mask &= frame["rule"] == rule
    return mask


def _as_bytes(source: str, raw_records: list[str]) -> bytes:
    if source == "monitor":
        return "\r".join(raw_records).encode("utf-8", errors="surrogateescape")
    if source == "epro":
        return "\n".join(raw_records).encode("utf-8")
    rows = [json.loads(r) for r in raw_records]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _replay_file_rows(
    lake: Lake, source_name: str, batch_id: str, records: pd.DataFrame, refs
) -> tuple[pd.DataFrame, list[QuarantineRecord], dict]:
    source = SOURCES[source_name]
    recon = lake.read_json(lake.reconciliation_file(source_name, batch_id))
    marker = {"service_date": recon["service_date"], "clinic_id": recon["clinic_id"], "files": []}
    batch = LandedBatch(source_name, batch_id, marker)
    undecodable = [r for r in records["raw_record"] if "\\x" in r] if source_name == "monitor" else []
    readable = [r for r in records["raw_record"] if r not in undecodable]
    parsed = source.parse(_as_bytes(source_name, readable), batch, refs) if readable else None
    rejected = [
        QuarantineRecord(batch_id, source_name, k, rl, sev, rs, raw)
        for k, rl, sev, rs, raw in zip(
            records["row_key"],
            records["rule"],
            records["severity"],
            records["reason"],
            records["raw_record"],
            strict=True,
        )
        if raw in undecodable
    ]
    rows = pd.DataFrame(parsed.rows) if parsed and parsed.rows else pd.DataFrame()
    linked = source.link(rows, refs) if not rows.empty else Linked(rows)
    candidates = linked.rows.assign(clinic_id=batch.clinic_id) if not linked.rows.empty else linked.rows
    gate = validate_staged(source.table, source_name, candidates, lake.quality_dir)
    rejected += (parsed.rejected if parsed else []) + linked.rejected + gate.rejected
    return gate.staged, rejected, recon


def _replay_ehr_rows(lake: Lake, batch_id: str, records: pd.DataFrame) -> tuple[int, list[QuarantineRecord]]:
    from clinic_pipeline.ingest.ehr_source import _stage_table, _upserts, held_keys

    staged_count, rejected = 0, []
    held = held_keys(lake.read_parquets(lake.path("quarantine", "ehr")))
    for table, group in records.groupby(records["row_key"].str.partition(":")[0]):
        rows = pd.DataFrame([json.loads(r) for r in group["raw_record"]])
        key = ehr_staging.KEYS[table]
        for k in rows[key]:
            held.get(table, set()).discard(str(k))
        staged = _stage_table(table, rows, batch_id, lake, held)
        gate = validate_staged(table, "ehr", staged.rows, lake.quality_dir)
        rejected += [
            QuarantineRecord(r.batch_id, "ehr", r.row_key, r.rule, r.severity, r.reason, r.raw_record)
            for r in staged.rejected
        ]
        rejected += [
            QuarantineRecord(r.batch_id, "ehr", f"{table}:{r.row_key}", r.rule, r.severity, r.reason, r.raw_record)
            for r in gate.rejected
        ]
        for target, frame in _upserts(lake, table, gate.staged.drop(columns=["batch_id"])):
            lake.write_parquet(target, frame)
        staged_count += len(gate.staged)
    return staged_count, rejected


def replay_quarantine(
    lake_root: str | Path,
    *,
    source: str | None = None,
    rule: str | None = None,
    batch: str | None = None,
    now: dt.datetime,
) -> ReplaySummary:
    lake = Lake(lake_root)
    summary = ReplaySummary()
    refs = None
    for qfile in sorted(lake.path("quarantine").glob("*/*.parquet")):
        source_name, batch_id = qfile.parent.name, qfile.stem
        if (source and source_name != source) or (batch and batch_id != batch):
            continue
        frame = pd.read_parquet(str(qfile))
        selected = _replayable(frame, rule)
        if not selected.any():
            continue
        records, kept = frame[selected], frame[~selected]
        if source_name == "ehr":
            staged_count, rejected = _replay_ehr_rows(lake, batch_id, records)
            recon = lake.read_json(lake.reconciliation_file("ehr", batch_id))
        else:
            refs = refs or load_references(lake)
            staged, rejected, recon = _replay_file_rows(lake, source_name, batch_id, records, refs)
            staged_count = len(staged)
            table = SOURCES[source_name].table
            target = lake.staged_file(table, recon["clinic_id"] or "none", recon["service_date"], batch_id)
            current = pd.read_parquet(str(target)) if target.exists() else staged.iloc[0:0]
            key = SOURCES[source_name].key
            merged = pd.concat([current, staged], ignore_index=True).drop_duplicates(key, keep="last")
            if not merged.empty:
                lake.write_parquet(target, merged)
        remaining = pd.concat([kept, quarantine_frame(rejected)], ignore_index=True)
        if remaining.empty:
            qfile.unlink()
        else:
            lake.write_parquet(qfile, remaining)
        recon["rows_staged"] += staged_count
        recon["rows_quarantined"] = int(remaining["row_count"].sum())
        recon["quarantined_by_rule"] = {k: int(v) for k, v in remaining.groupby("rule")["row_count"].sum().items()}
        recon["reconciled"] = recon["rows_in"] == recon["rows_staged"] + recon["rows_quarantined"]
        lake.write_json(lake.reconciliation_file(source_name, batch_id), recon)
        moved = {"replayed": len(records), "staged": staged_count, "still_quarantined": len(rejected)}
        summary.by_batch[batch_id] = moved
        summary.batches += 1
        summary.replayed += len(records)
        summary.staged += staged_count
        summary.still_quarantined += len(rejected)
        log.info(
            "replayed %d quarantined rows of batch %s (%s): %d staged, %d still quarantined",
            len(records),
            batch_id,
            source_name,
            staged_count,
            len(rejected),
        )
    if summary.batches:
        lake.write_json(
            lake.path("quality", "replays", f"replay-{now:%Y%m%dT%H%M%S}.json"),
            {"source": source, "rule": rule, "batch": batch, **summary.by_batch},
        )
    return summary
