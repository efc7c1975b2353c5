"""Publish the safety dashboard: `publish_dashboard(lake, run_id)`.

Reads the publication marts named in `marts/_manifest.json` (never an internal mart), builds the static site
(`site.build_site`: index.html with data, script and style inline, csv/ with every table, site.json) and
publishes it to the lake's `dashboards/<run_id>/` and then `dashboards/latest/`.

Atomic on a local lake: the site is written to a hidden staging folder next to its target and moved into
place with one rename (a new folder) or one atomic exchange (Linux `renameat2(RENAME_EXCHANGE)`, replacing
a folder that exists), so a reader sees the whole old site or the whole new one. On an object store (fsspec
URL) each file is written whole, `index.html` last; the page is self-contained (its data is inline), so it is
never out of step with itself, and CSVs from an older run are removed after the new ones are in place.
Deterministic: the same marts give the same bytes but for the run id.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from clinic_pipeline.dashboard.site import REQUIRED_MARTS, Site, build_site
from clinic_pipeline.lake import Lake

log = logging.getLogger("clinic_pipeline.dashboard")

DASHBOARDS_DIR = "dashboards"
LATEST = "latest"
PUBLICATION = "publication"


def publish_dashboard(lake: Lake, run_id: str | None = None) -> Path:
    """Build the dashboard from the lake's marts and publish it; returns `dashboards/latest/index.html`.

    `run_id`: the folder name of this run under `dashboards/` (an Airflow run id is fine: characters other
    than letters, digits, "-", "_" and "." become "_"); default: the UTC time of the call.
    """
    started = time.perf_counter()
    folder = safe_run_id(run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    manifest, marts = read_publication_marts(lake)
    site = build_site(marts, manifest, folder)
    run_dir = lake.path(DASHBOARDS_DIR, folder)
    latest_dir = lake.path(DASHBOARDS_DIR, LATEST)
    if lake.local:
        _publish_local(Path(str(run_dir)), site.files)
        _publish_local(Path(str(latest_dir)), site.files)
    else:
        _publish_remote(lake, run_dir, site.files)
        _publish_remote(lake, latest_dir, site.files)
    log.info(
        "dashboard %s: %d files, index.html %.0f kB, as of %s, %.1f s",
        folder,
        len(site.files),
        len(site.files["index.html"]) / 1024,
        manifest.get("as_of"),
        time.perf_counter() - started,
    )
    return latest_dir / "index.html"


def build_dashboard_site(lake: Lake, run_id: str = "preview") -> Site:
    """The site in memory, without publishing it (tests, previews)."""
    manifest, marts = read_publication_marts(lake)
    return build_site(marts, manifest, safe_run_id(run_id))


def safe_run_id(run_id: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", run_id).strip(".")
    if not cleaned or cleaned == LATEST:
        raise ValueError(f"run id {run_id!r} cannot name a dashboard folder")
    return cleaned


def read_publication_marts(lake: Lake) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The manifest and every mart the site needs; each must be listed with the publication audience."""
    manifest_path = lake.path("marts", "_manifest.json")
    manifest = lake.read_json(manifest_path)
    if manifest is None:
        raise FileNotFoundError(f"{manifest_path}: no marts manifest; build the marts first")
    listed = {m["name"]: m for m in manifest.get("marts", [])}
    marts = {}
    for name in REQUIRED_MARTS:
        entry = listed.get(name)
        if entry is None:
            raise ValueError(f"marts manifest: mart {name!r} is missing")
        if entry.get("audience") != PUBLICATION:
            raise ValueError(f"marts manifest: mart {name!r} is {entry.get('audience')!r}, not publication")
        with lake.path(entry["file"]).open("rb") as handle:
            marts[name] = pd.read_parquet(handle)
    return manifest, marts


def _publish_local(target: Path, files: dict[str, bytes]) -> None:
    """Write the site to a staging folder beside `target`, then swap it into place in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.staging"
    try:
        for name, body in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        if not target.exists():
            try:
                staging.rename(target)  # atomic; fails if another publisher created it meanwhile
                return
            except OSError:
                if not target.exists():
                    raise
        _exchange(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)  # after an exchange: the previous site


def _exchange(staging: Path, target: Path) -> None:
    """Atomically exchange two folders (Linux renameat2); elsewhere, two renames in quick succession."""
    if _renameat2_exchange(staging, target):
        return
    retired = target.parent / f".{target.name}.{uuid.uuid4().hex}.retired"
    os.rename(target, retired)
    os.rename(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def _renameat2_exchange(first: Path, second: Path) -> bool:
    rename_exchange, at_fdcwd = 2, -100
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    return result == 0


def _publish_remote(lake: Lake, target: Any, files: dict[str, bytes]) -> None:
    """Object store: every file whole, index.html last, then CSVs of an older site removed."""
    for name in sorted(files, key=lambda n: n == "index.html"):
        lake.write_bytes(target / name, files[name])
    keep = {str(target / name) for name in files}
    for path in target.rglob("*"):
        if path.is_file() and str(path) not in keep:
            path.unlink()
