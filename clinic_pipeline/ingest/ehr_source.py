"""Incremental EHR ingest: read rows changed since the stored watermark, stage, gate, upsert by key.

The watermark is per table (`updated_at` of the newest row read, staged or quarantined). Rows are read with a
small overlap before it, because an EHR may commit a row with an `updated_at` a little older than one it
committed earlier; versions already read are recognised (same key and `updated_at`) and skipped, so the
overlap never counts or stages a row twice. Late corrections replace the staged row with the same key.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from clinic_pipeline.ingest.landing import announced_batches
from clinic_pipeline.ingest.outcome import BatchReport, finish_batch
from clinic_pipeline.lake import Lake
from clinic_pipeline.quality.gates import validate_staged
from transforms import ehr_staging
from transforms.quarantine import QuarantineRecord

log = logging.getLogger("clinic_pipeline.ingest")
TABLE_ORDER = ["clinics", "patients", "concomitant_medications", "infusion_sessions", "adverse_events"]
OVERLAP = dt.timedelta(minutes=10)
READ_CHUNK_ROWS = 50_000


def _watermark_file(lake: Lake):
    return lake.path("state", "ehr_watermark.json")


def read_changes(engine: sa.Engine, table: str, since: dt.datetime | None) -> pd.DataFrame:
    columns = ", ".join(ehr_staging.EHR_COLUMNS[table])
    query = f"select {columns} from {table}"
    params = {}
    if since is not None:
        query += " where updated_at > :since"
        params["since"] = (since - OVERLAP).replace(tzinfo=None) if engine.dialect.name == "sqlite" else since - OVERLAP
    query += " order by updated_at"
    chunks = list(pd.read_sql(sa.text(query), engine, params=params, chunksize=READ_CHUNK_ROWS))
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=ehr_staging.EHR_COLUMNS[table])


def _seen_versions(lake: Lake, table: str, held_frame: pd.DataFrame) -> pd.DataFrame:
    """(key, updated_at) of every version of a table already read: staged or held in quarantine."""
    key = ehr_staging.KEYS[table]
    existing = lake.read_parquets(lake.staged_table(table))
    seen = existing[[key, "updated_at"]] if not existing.empty else pd.DataFrame(columns=[key, "updated_at"])
    if held_frame.empty:
        return seen
    held_rows = held_frame[held_frame["row_key"].str.startswith(f"{table}:")]
    versions = pd.DataFrame([json.loads(raw) for raw in held_rows["raw_record"]], columns=[key, "updated_at"])
    return pd.concat([seen, versions[[key, "updated_at"]]], ignore_index=True)


def _already_read(table: str, rows: pd.DataFrame, seen: pd.DataFrame) -> pd.Series:
    """Rows of the overlap window whose exact version (key, updated_at) was read before."""
    if seen.empty or rows.empty:
        return pd.Series(False, index=rows.index)
    key = ehr_staging.KEYS[table]
    versions = set(zip(seen[key], pd.to_datetime(seen["updated_at"], utc=True), strict=True))
    updated = pd.to_datetime(rows["updated_at"], utc=True, format="mixed")
    return pd.Series([(k, u) in versions for k, u in zip(rows[key], updated, strict=True)], index=rows.index)


def ingest_ehr(ehr_url: str, landing: Path, lake: Lake, *, now: dt.datetime) -> BatchReport | None:
    """One incremental read of every EHR table. Returns the batch report, or None when nothing changed."""
    engine = sa.create_engine(ehr_url)
    marks = lake.read_json(_watermark_file(lake), {})
    batch_id = f"ehr-{now.strftime('%Y%m%dT%H%M%S')}"
    markers = [b for b in announced_batches(landing, "ehr") if not lake.ledger_file("ehr", b.batch_id).exists()]
    report = BatchReport("ehr", batch_id, "ingested")
    quarantine: list[QuarantineRecord] = []
    new_marks = dict(marks)
    held_frame = lake.read_parquets(lake.path("quarantine", "ehr"))  # read once: every table needs it
    held = held_keys(held_frame)
    for table in TABLE_ORDER:
        since = dt.datetime.fromisoformat(marks[table]) if table in marks else None
        rows = read_changes(engine, table, since)
        rows = rows[~_already_read(table, rows, _seen_versions(lake, table, held_frame))]
        if rows.empty:
            continue
        report.rows_in += len(rows)
        new_marks[table] = pd.to_datetime(rows["updated_at"], utc=True, format="mixed").max().isoformat()
        staged = _stage_table(table, rows, batch_id, lake, held)
        quarantine += staged.rejected
        for k, v in staged.conversions.items():
            report.conversions[k] = report.conversions.get(k, 0) + v
        gate = validate_staged(table, "ehr", staged.rows, lake.quality_dir)
        quarantine += [
            QuarantineRecord(r.batch_id, r.source, f"{table}:{r.row_key}", r.rule, r.severity, r.reason, r.raw_record)
            for r in gate.rejected
        ]
        for record in quarantine:
            held.setdefault(record.row_key.partition(":")[0], set()).add(record.row_key.partition(":")[2])
        if gate.failed_batches:
            report.status, report.reason = "gate_failed", next(iter(gate.failed_batches.values()))
            continue
        report.rows_staged += len(gate.staged)
        # Written now, not at the end: the next table's reference checks read this one from the lake. Each row
        # keeps the batch (EHR read) that staged its current version: FHIR Provenance points to it.
        for target, frame in _upserts(lake, table, gate.staged):
            lake.write_parquet(target, frame)
    if report.rows_in == 0 and not markers:
        return None
    finish_batch(lake, report, quarantine, [])
    if report.status != "gate_failed":
        lake.write_json(_watermark_file(lake), new_marks)
        for marker in markers:
            lake.write_json(lake.ledger_file("ehr", marker.batch_id), {"status": "read", "by": batch_id})
    return report


def _stage_table(
    table: str, rows: pd.DataFrame, batch_id: str, lake: Lake, held: dict[str, set[str]]
) -> ehr_staging.StagedTable:
    if table == "patients":
        return ehr_staging.stage_patients(rows, batch_id)
    parents = {
        "infusion_sessions": ("patients", "patient_id"),
        "concomitant_medications": ("patients", "patient_id"),
        "adverse_events": ("infusion_sessions", "session_id"),
    }
    if table not in parents:
        return ehr_staging.StagedTable(table, ehr_staging.prepare(table, rows, batch_id))
    parent, column = parents[table]
    staged = lake.read_parquets(lake.staged_table(parent))
    known = (set(staged[column]) if not staged.empty else set()) | held.get(parent, set())
    return ehr_staging.stage_by_reference(table, rows, batch_id, column, known)


def held_keys(frame: pd.DataFrame) -> dict[str, set[str]]:
    """Keys of EHR rows in quarantine, per table (row keys are '<table>:<key>')."""
    held: dict[str, set[str]] = {}
    for row_key in frame["row_key"] if not frame.empty else []:
        table, _, key = row_key.partition(":")
        held.setdefault(table, set()).add(key)
    return held


def _upserts(lake: Lake, table: str, staged: pd.DataFrame) -> list:
    """One partition per clinic; each touched partition is rewritten with the new versions merged in."""
    if staged.empty:
        return []
    if "clinic_id" not in staged:  # events and medications inherit the clinic of their session / patient
        parent_table, column = (
            ("infusion_sessions", "session_id") if table == "adverse_events" else ("patients", "patient_id")
        )
        parent = lake.read_parquets(lake.staged_table(parent_table)).drop_duplicates(column).set_index(column)
        staged = staged.assign(clinic_id=staged[column].map(parent["clinic_id"]))
    key = ehr_staging.KEYS[table]
    writes = []
    for clinic_id, part in staged.groupby("clinic_id", dropna=False):
        target = lake.path("staged", table, f"clinic_id={clinic_id}", "part.parquet")
        current = lake.read_parquets(target.parent)
        writes.append((target, ehr_staging.upsert(current, part, key)))
    return writes
