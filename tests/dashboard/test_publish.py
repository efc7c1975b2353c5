"""Publishing: one folder per run plus latest/, swapped in whole, the same bytes from the same marts, and
object stores through the Lake API."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from clinic_pipeline.dashboard import publish_dashboard
from clinic_pipeline.dashboard.build import safe_run_id
from clinic_pipeline.lake import Lake
from tests.dashboard.conftest import RUN_ID, PublishedDashboard, embedded_data


@pytest.fixture
def lake_copy(dashboard: PublishedDashboard, tmp_path: Path) -> Lake:
    """A lake holding only the marts of the shared build (publishing here leaves the shared one alone)."""
    shutil.copytree(dashboard.lake.path("marts"), tmp_path / "lake" / "marts")
    return Lake(tmp_path / "lake")


def site_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_published_to_the_run_folder_and_latest(dashboard: PublishedDashboard):
    root = Path(str(dashboard.lake.path("dashboards")))
    assert (root / RUN_ID / "index.html").is_file() and (root / "latest" / "index.html").is_file()
    assert site_files(root / RUN_ID) == site_files(root / "latest")
    assert {"index.html", "site.json", "csv/ae_incidence.csv", "csv/serious_event_listing.csv"} <= set(
        site_files(root / "latest")
    )
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "a staging folder was left behind"


def test_same_marts_give_the_same_bytes_but_for_the_run_id(lake_copy: Lake):
    first = Path(str(publish_dashboard(lake_copy, "run-a"))).parent.parent / "run-a"
    publish_dashboard(lake_copy, "run-b")
    second = first.parent / "run-b"
    a, b = site_files(first), site_files(second)
    assert a.keys() == b.keys()
    for name in a:
        if name in ("index.html", "site.json"):
            assert a[name].replace(b"run-a", b"run-b") != a[name]
            if name == "index.html":
                assert a[name].replace(b"run-a", b"run-b") == b[name]
        else:
            assert a[name] == b[name], name
    latest = site_files(first.parent / "latest")
    assert latest == b, "latest is the last run"


def test_republishing_a_run_replaces_it_whole(lake_copy: Lake):
    index = Path(str(publish_dashboard(lake_copy, "again")))
    run = index.parent.parent / "again"
    (run / "csv" / "stale.csv").write_text("old\n")
    (index.parent / "csv" / "stale.csv").write_text("old\n")
    publish_dashboard(lake_copy, "again")
    assert not (run / "csv" / "stale.csv").exists() and not (index.parent / "csv" / "stale.csv").exists()
    assert not [p for p in run.parent.iterdir() if p.name.startswith(".")]


def test_a_reader_never_sees_half_a_site(lake_copy: Lake):
    """While two more runs are published, a reader of latest/index.html always gets a whole page (the data
    parses, the page ends) and never finds the folder missing."""
    index = Path(str(publish_dashboard(lake_copy, "first")))
    problems: list[str] = []
    stop = threading.Event()

    def read() -> None:
        reads = 0
        while not stop.is_set() or reads < 5:
            reads += 1
            try:
                html = index.read_text(encoding="utf-8")
            except FileNotFoundError:
                problems.append("latest/index.html missing")
                continue
            if not html.rstrip().endswith("</html>"):
                problems.append("a partial page")
                continue
            embedded_data(html)
            time.sleep(0.01)  # leave the publisher the interpreter most of the time

    reader = threading.Thread(target=read)
    reader.start()
    for run in ("second", "third"):
        publish_dashboard(lake_copy, run)
    stop.set()
    reader.join(timeout=60)
    assert not problems, problems[:3]


def test_run_ids_become_safe_folder_names():
    assert safe_run_id("scheduled__2026-01-11T00:00:00+00:00") == "scheduled__2026-01-11T00_00_00_00_00"
    assert safe_run_id("manual/../../etc") == "manual_.._.._etc"
    with pytest.raises(ValueError):
        safe_run_id("latest")
    with pytest.raises(ValueError):
        safe_run_id("..")


def test_no_marts_manifest_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        publish_dashboard(Lake(tmp_path / "empty"), "run")


def test_object_store_lake(dashboard: PublishedDashboard):
    """An fsspec URL (memory://): every file written whole, and files of an older site removed from latest."""
    import fsspec

    memory = fsspec.filesystem("memory")
    root = "memory://dashboard-test-lake"
    for path in Path(str(dashboard.lake.path("marts"))).iterdir():
        memory.pipe(f"{root}/marts/{path.name}", path.read_bytes())
    lake = Lake(root)
    publish_dashboard(lake, "remote-1")
    memory.pipe(f"{root}/dashboards/latest/csv/stale.csv", b"old\n")
    index = publish_dashboard(lake, "remote-2")
    html = memory.cat(f"{root}/dashboards/latest/index.html").decode("utf-8")
    assert embedded_data(html)["meta"]["run_id"] == "remote-2"
    assert str(index).endswith("dashboards/latest/index.html")
    assert not memory.exists(f"{root}/dashboards/latest/csv/stale.csv")
    assert memory.exists(f"{root}/dashboards/remote-1/csv/ae_incidence.csv")
    memory.rm(root, recursive=True)
