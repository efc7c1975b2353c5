"""Reading the landing zone: which announced batches are still to be processed, and their raw landing.

A batch exists for the pipeline only once its marker (`_ready/<source>/<batch_id>.json`) is there. The
processed-batch ledger in the lake makes every step idempotent: a batch in the ledger is never read again,
and a batch whose content was already seen under another id is recorded as a duplicate and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinic_pipeline.lake import Lake

FILE_SOURCES = ("monitor", "epro", "redcap")


@dataclass(frozen=True)
class LandedBatch:
    source: str
    batch_id: str
    marker: dict[str, Any]

    @property
    def service_date(self) -> str:
        return self.marker["service_date"]

    @property
    def clinic_id(self) -> str | None:
        return self.marker.get("clinic_id")

    @property
    def declared_records(self) -> int | None:
        return self.marker.get("records")


@dataclass
class RawLanding:
    """The batch's files as received, copied into raw/, and what is wrong with them as files."""

    files: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    content_sha256: str = ""
    duplicate_of: str | None = None


def announced_batches(landing: Path, source: str) -> list[LandedBatch]:
    markers = sorted((landing / "_ready" / source).glob("*.json"))
    batches = [LandedBatch(source, m.stem, json.loads(m.read_text(encoding="utf-8"))) for m in markers]
    return sorted(batches, key=lambda b: (b.service_date, b.batch_id))


def pending_batches(landing: Path, lake: Lake, source: str) -> list[LandedBatch]:
    """Announced batches of a source that the ledger does not know yet, oldest service date first."""
    return [b for b in announced_batches(landing, source) if not lake.ledger_file(source, b.batch_id).exists()]


def land_raw(landing: Path, lake: Lake, batch: LandedBatch) -> RawLanding:
    """Copy the batch's files into raw/ (immutable), check them against the marker, detect re-deliveries."""
    result = RawLanding()
    digest = hashlib.sha256()
    raw_dir = lake.raw_dir(batch.source, batch.service_date, batch.batch_id)
    checksums = {}
    for entry in batch.marker["files"]:
        path = landing / entry["path"]
        if not path.exists():
            result.problems.append(f"file {entry['path']} named by the marker is missing")
            continue
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if sha != entry["sha256"] or len(data) != entry["bytes"]:
            result.problems.append(
                f"file {entry['path']} has {len(data)} bytes / sha256 {sha[:12]}, the marker says "
                f"{entry['bytes']} bytes / {entry['sha256'][:12]}: damaged or truncated in transit"
            )
        name = Path(entry["path"]).name
        target = raw_dir / name
        if target.exists():
            if hashlib.sha256(target.read_bytes()).hexdigest() != sha:
                raise RuntimeError(f"raw/ is immutable: {batch.batch_id}/{name} already holds different content")
        else:
            lake.write_bytes(target, data)
        checksums[name] = sha
        result.files[entry["path"]] = data
        digest.update(sha.encode())
    lake.write_json(
        raw_dir / "_checksums.json", {"batch_id": batch.batch_id, "sha256": checksums, "marker": batch.marker}
    )
    result.content_sha256 = digest.hexdigest()
    if not result.problems:
        first = lake.read_json(lake.content_file(result.content_sha256))
        if first and first["batch_id"] != batch.batch_id:
            result.duplicate_of = first["batch_id"]
    return result


def remember_content(lake: Lake, batch: LandedBatch, raw: RawLanding) -> None:
    """After a batch is processed, its content identifies it: a re-delivery under another id is a no-op."""
    if raw.content_sha256 and not raw.problems:
        target = lake.content_file(raw.content_sha256)
        if not target.exists():
            lake.write_json(target, {"batch_id": batch.batch_id, "source": batch.source})


def ehr_ingested_through(landing: Path, lake: Lake) -> str | None:
    """The latest service date whose EHR day marker has been read: file batches up to it find their sessions."""
    read = [b.service_date for b in announced_batches(landing, "ehr") if lake.ledger_file("ehr", b.batch_id).exists()]
    return max(read) if read else None
