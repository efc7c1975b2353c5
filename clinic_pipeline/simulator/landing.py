"""The landing zone the clinic systems write into, and how they announce a finished batch.

Complete-batch semantics: data files are written first (temp name, then rename), and only then the
batch marker `_ready/<source>/<batch_id>.json`, a manifest with each file's size and sha256. A reader that
sees a marker may trust that the sender finished the batch; a reader that sees only data files must wait.
When a Redis URL is given, the marker is also announced on a Redis Stream (at-least-once wake-up signal).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

READY_DIR = "_ready"
DEFAULT_STREAM = "clinic-pipeline:batches"


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class LandingZone:
    def __init__(self, root: Path, redis_url: str | None = None, stream: str = DEFAULT_STREAM) -> None:
        self.root = root
        self.stream = stream
        self._redis = None
        if redis_url:
            import redis  # only the production path needs it

            self._redis = redis.Redis.from_url(redis_url)

    def marker_path(self, source: str, batch_id: str) -> Path:
        return self.root / READY_DIR / source / f"{batch_id}.json"

    def publish(
        self,
        source: str,
        batch_id: str,
        files: dict[str, bytes],
        manifest: dict[str, Any],
        delivered: dict[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """Write the batch's files, then its marker, then announce it.

        `files` is what the sender meant to send (the manifest's checksums); `delivered` is what actually
        arrived when a fault damaged it in transit (a truncated file keeps the checksum of the whole).
        """
        delivered = delivered or files
        entries = []
        for rel, data in files.items():
            atomic_write(self.root / rel, delivered[rel])
            entries.append({"path": rel, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        marker = {"batch_id": batch_id, "source": source, **manifest, "files": entries}
        marker_rel = self.marker_path(source, batch_id).relative_to(self.root).as_posix()
        atomic_write(self.root / marker_rel, (json.dumps(marker, indent=1, sort_keys=True) + "\n").encode())
        if self._redis is not None:
            self._redis.xadd(self.stream, {"source": source, "batch_id": batch_id, "marker": marker_rel})
        return {"marker": marker_rel, **marker}
