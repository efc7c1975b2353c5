"""`clinic-pipeline bench`: speed and memory figures, each against the naive way measured in the same run.

Generation of a network-month (default 50 clinics x 30 days), target < 60 s on a 2-core machine:
  - HL7 writing: our cached string templates vs building each ORU^R01 with hl7apy's object model;
  - EHR writing: one transaction per simulated day vs one commit per row.
"""

from __future__ import annotations

import json
import resource
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clinic_pipeline.simulator import ehr, hl7_monitor
from clinic_pipeline.simulator.config import load_network_config
from clinic_pipeline.simulator.network import build_clinics, build_patients
from clinic_pipeline.simulator.runner import SimulationOptions, simulate
from clinic_pipeline.simulator.sessions import Session, build_session


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sample_sessions(count: int) -> list[Session]:
    config = load_network_config()
    clinics = build_clinics(config, seed=99, count=2)
    sessions: list[Session] = []
    for clinic in clinics:
        for patient in build_patients(config, 99, clinic, last_day=60):
            sessions.extend(build_session(config, 99, patient, plan) for plan in patient.sessions[:2])
    return sessions[:count]


def _hl7apy_message(session: Session, reading: Any, control_id: str) -> str:
    """The naive way: assemble the same ORU^R01 through hl7apy's validated object model."""
    from hl7apy.core import Message

    msg = Message("ORU_R01", version="2.6")
    msg.msh.msh_3 = "INFINITY_GW"
    msg.msh.msh_4 = session.patient.clinic.clinic_id
    msg.msh.msh_7 = hl7_monitor.hl7_ts(reading.taken_at)
    msg.msh.msh_9 = "ORU^R01^ORU_R01"
    msg.msh.msh_10 = control_id
    msg.msh.msh_11 = "P"
    result = msg.add_group("ORU_R01_PATIENT_RESULT")
    patient = result.add_group("ORU_R01_PATIENT")
    patient.pid.pid_3 = f"{session.patient.mrn}^^^{session.patient.clinic.clinic_id}^MR"
    patient.pid.pid_5 = f"{session.patient.family_name}^{session.patient.given_name}"
    visit = patient.add_group("ORU_R01_VISIT")
    visit.pv1.pv1_2 = "O"
    visit.pv1.pv1_19 = session.session_id
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    order.obr.obr_4 = "182777000^Monitoring of patient^SCT"
    for i, (code, value) in enumerate(
        [("150021", reading.sbp), ("150022", reading.dbp), ("147842", reading.hr), ("150456", reading.spo2)], 1
    ):
        obx = order.add_group("ORU_R01_OBSERVATION").obx
        obx.obx_1, obx.obx_2, obx.obx_3 = str(i), "NM", f"{code}^^MDC"
        obx.obx_5, obx.obx_14 = str(value), hl7_monitor.hl7_ts(reading.taken_at)
    return msg.to_er7()


def bench_hl7_writing(sessions: list[Session]) -> dict[str, Any]:
    pairs = [(s, r) for s in sessions for r in s.readings][:1500]
    ours, _ = _timed(lambda: [hl7_monitor.reading_message(s, r, f"B{i}").text() for i, (s, r) in enumerate(pairs)])
    naive, _ = _timed(lambda: [_hl7apy_message(s, r, f"B{i}") for i, (s, r) in enumerate(pairs)])
    return {
        "messages": len(pairs),
        "ours_per_s": len(pairs) / ours,
        "hl7apy_per_s": len(pairs) / naive,
        "speedup": naive / ours,
    }


def bench_ehr_writing(sessions: list[Session], workdir: Path) -> dict[str, Any]:
    rows = [ehr.session_row(s, ehr.utc(s.discharged_at)) for s in sessions]
    batched_db, naive_db = workdir / "ehr-batched.sqlite", workdir / "ehr-naive.sqlite"
    for db in (batched_db, naive_db):
        db.unlink(missing_ok=True)
    engine = ehr.create_engine(f"sqlite:///{batched_db}")

    def batched() -> None:
        with engine.begin() as conn:
            ehr.upsert_rows(conn, "infusion_sessions", rows)

    def row_at_a_time() -> None:
        naive_engine = ehr.create_engine(f"sqlite:///{naive_db}")
        for row in rows:
            with naive_engine.begin() as conn:
                conn.execute(ehr.infusion_sessions.insert(), row)

    ours, _ = _timed(batched)
    naive, _ = _timed(row_at_a_time)
    count = sqlite3.connect(naive_db).execute("select count(*) from infusion_sessions").fetchone()[0]
    assert count == len(rows)
    return {
        "rows": len(rows),
        "ours_per_s": len(rows) / ours,
        "row_commit_per_s": len(rows) / naive,
        "speedup": naive / ours,
    }


def bench_network_month(clinics: int, days: int, workdir: Path) -> dict[str, Any]:
    out = workdir / "landing"
    shutil.rmtree(out, ignore_errors=True)
    options = SimulationOptions(out=out, clinics=clinics, days=days, seed=7, truth_out=workdir / "truth.json")
    seconds, summary = _timed(lambda: simulate(options))
    truth = json.loads((workdir / "truth.json").read_text())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "clinics": clinics,
        "days": days,
        "seconds": seconds,
        "sessions": summary.sessions,
        "batches": summary.batches,
        "hl7_messages": truth["counts"]["vital_readings"],
        "messages_per_s": truth["counts"]["vital_readings"] / seconds,
        "landing_mib": size / 2**20,
        "peak_rss_mib": _peak_rss_mib(),
        "target_seconds": 60,
    }


def run_benchmarks(clinics: int, days: int, workdir: Path) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    sessions = _sample_sessions(300)
    results = {
        "generate_network": bench_network_month(clinics, days, workdir),
        "hl7_writing": bench_hl7_writing(sessions),
        "ehr_writing": bench_ehr_writing(sessions, workdir),
    }
    (workdir / "bench.json").write_text(json.dumps(results, indent=2))
    g, h, e = results["generate_network"], results["hl7_writing"], results["ehr_writing"]
    print(f"\n== clinic-pipeline bench ({clinics} clinics x {days} days) ==")
    print(
        f"generate network-month : {g['seconds']:7.1f} s  (target < {g['target_seconds']} s)  "
        f"{g['sessions']} sessions, {g['hl7_messages']} HL7 messages ({g['messages_per_s']:,.0f}/s), "
        f"{g['landing_mib']:.0f} MiB landed, peak RSS {g['peak_rss_mib']:.0f} MiB"
    )
    print(
        f"HL7 writing            : {h['ours_per_s']:9,.0f} msg/s vs hl7apy object model "
        f"{h['hl7apy_per_s']:,.0f} msg/s  -> x{h['speedup']:.1f}"
    )
    print(
        f"EHR writing            : {e['ours_per_s']:9,.0f} rows/s vs commit per row "
        f"{e['row_commit_per_s']:,.0f} rows/s  -> x{e['speedup']:.1f}"
    )
    print(f"figures: {workdir / 'bench.json'}")
    return 0 if g["seconds"] < g["target_seconds"] else 1
