"""Test-side readers of the landing zone, written independently of the simulator's writers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any


def split_hl7_batch(data: bytes) -> list[bytes]:
    """The messages of an HL7 batch file, as raw bytes, without the FHS/BHS/BTS/FTS envelope."""
    messages: list[list[bytes]] = []
    for segment in data.split(b"\r"):
        if segment.startswith(b"MSH|"):
            messages.append([segment])
        elif segment[:4] in (b"FHS|", b"BHS|", b"BTS|", b"FTS|") or not segment:
            continue
        else:
            messages[-1].append(segment)
    return [b"\r".join(m) for m in messages]


def hl7_files(landing: Path) -> list[Path]:
    return sorted(landing.glob("monitor/*/*.hl7"))


def ndjson_resources(landing: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(landing.glob("epro/*/*.ndjson")) for line in f.read_text().splitlines()]


def redcap_rows(landing: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for f in sorted(landing.glob("redcap/*/*.csv")):
        rows.extend(csv.DictReader(io.StringIO(f.read_text(encoding="utf-8"))))
    return rows


def markers(landing: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(landing.glob("_ready/*/*.json"))]
