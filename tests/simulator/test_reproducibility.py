"""Same seed and options give the same bytes; a resumed network equals one long run."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from tests.conftest import generate


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def ehr_rows(db_path: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(db_path)
    tables = [r[0] for r in db.execute("select name from sqlite_master where type = 'table' order by name")]
    return {t: db.execute(f"select * from {t} order by 1").fetchall() for t in tables}


def test_same_seed_and_options_give_byte_identical_output(tmp_path):
    first = generate(tmp_path / "a", clinics=2, days=4, seed=21, faults=0.1)
    second = generate(tmp_path / "b", clinics=2, days=4, seed=21, faults=0.1)
    digest = tree_digest(first.landing)
    assert digest == tree_digest(second.landing)
    assert "ehr.sqlite" in digest and any(k.endswith(".hl7") for k in digest)
    assert first.truth_path.read_bytes() == second.truth_path.read_bytes()
    third = generate(tmp_path / "c", clinics=2, days=4, seed=22, faults=0.1)
    assert tree_digest(third.landing) != digest


def test_a_resumed_network_equals_one_long_run(tmp_path):
    whole = generate(tmp_path / "whole", clinics=2, days=6, seed=9)
    generate(tmp_path / "split", clinics=2, days=4, seed=9)
    resumed = generate(tmp_path / "split", clinics=2, days=2, seed=9)
    files = {k: v for k, v in tree_digest(whole.landing).items() if k != "ehr.sqlite"}
    assert files == {k: v for k, v in tree_digest(resumed.landing).items() if k != "ehr.sqlite"}
    assert ehr_rows(whole.ehr_path) == ehr_rows(resumed.ehr_path)
    assert whole.truth["counts"] == resumed.truth["counts"]


def test_later_days_correct_earlier_adverse_events(tmp_path):
    """Late corrections: an event first saved as 'recovering' is updated in place days later, not duplicated."""
    net = generate(tmp_path / "n", clinics=3, days=8, seed=2)
    db = sqlite3.connect(net.ehr_path)
    corrected = db.execute(
        "select count(*) from adverse_events a join infusion_sessions s using (session_id) "
        "where date(a.updated_at) > date(s.discharged_at)"
    ).fetchone()[0]
    assert corrected > 0
    assert db.execute("select count(*) from adverse_events").fetchone()[0] == len(net.entered_adverse_events)
