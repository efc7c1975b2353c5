"""`clinic-pipeline bench`: speed and memory figures, each against the naive way measured in the same run.

Generation of a network-month (default 50 clinics x 30 days), target < 60 s on a 2-core machine:
  - HL7 writing: our cached string templates vs building each ORU^R01 with hl7apy's object model;
  - EHR writing: one transaction per simulated day vs one commit per row.
Ingest of that month in-process (`clinic-pipeline run`), target < 2 min, memory bounded by the chunk size:
  - HL7 parsing: the delimiter splitter vs python-hl7's object tree (same fields, checked by the tests);
  - staging: reference join of readings to sessions, rows/s;
  - validation: one GX run per chunk vs one GX run per batch;
  - peak memory of the month vs a third of it (the same when memory follows the chunk, not the history).
Safety review of that month: rebuild of the marts and of the static dashboard (small-cell suppression included).
FHIR export of that month (map, guarantee validity, serialize, write), target >= 30x the naive way:
  - the pipeline (vectorised row checks + one full validation per resource shape + orjson) vs fhir.resources
    `model_validate` + `model_dump_json` per resource, on a sample of the same resources; plus a sample of the
    written NDJSON through the full validator (`validate-fhir`), which must find nothing.
"""

from __future__ import annotations

import contextlib
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
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


def _ingest_subprocess(landing: Path, lake: Path) -> dict[str, Any]:
    """The ingest of `clinic-pipeline run` in a child process: its own wall time and peak RSS (children's max)."""
    shutil.rmtree(lake, ignore_errors=True)
    start = time.perf_counter()
    code = (
        "import sys; from pathlib import Path; from clinic_pipeline.ingest.run import run_pipeline; "
        f"sys.exit(0 if run_pipeline(Path({str(landing)!r}), {str(lake)!r}).ok else 1)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(done.stderr[-2000:])
    recon = json.loads((lake / "quality" / "reconciliation.json").read_text())
    rows = {}
    for batch in recon["batches"]:
        rows[batch["source"]] = rows.get(batch["source"], 0) + batch["rows_in"]
    return {
        "seconds": seconds,
        "rows_in": rows,
        "rows_per_s": sum(rows.values()) / seconds,
        "all_reconciled": recon["all_reconciled"],
        "peak_rss_mib": _children_peak_rss_mib(),
    }


def _children_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def bench_ingest_stages(landing: Path, lake: Path) -> dict[str, Any]:
    """Stage throughput on the month's first monitor batches, each against the naive way."""
    import pandas as pd

    from clinic_pipeline.ingest.references import load_references
    from clinic_pipeline.lake import Lake
    from clinic_pipeline.quality.gates import validate_staged
    from transforms import monitor_hl7
    from transforms.linking import link_to_sessions

    files = sorted(landing.glob("monitor/*/*.hl7"))[:300]
    batches = [(f.stem, f.read_bytes()) for f in files]
    parse_s, parsed = _timed(lambda: [monitor_hl7.parse_monitor_batch(data, bid) for bid, data in batches])
    messages = sum(p.messages_in for p in parsed)
    sample = [m.decode("utf-8", "replace") for m in monitor_hl7.split_messages(batches[0][1])][:300]

    def reference() -> None:
        for text in sample:
            with contextlib.suppress(monitor_hl7.MessageRejected):
                monitor_hl7.parse_reading(text, {}, splitter=monitor_hl7.split_message_with_python_hl7)

    naive_s, _ = _timed(reference)
    rows = pd.DataFrame([r for p in parsed for r in p.readings])
    refs = load_references(Lake(lake))
    link_s, linked = _timed(lambda: link_to_sessions(rows, refs, "control_id", "monitor", "observed_at"))
    frame = linked.rows.assign(clinic_id="C000")
    quality = Path(str(Lake(lake).quality_dir))
    validate_staged("vital_signs", "monitor", frame.head(50), quality)  # warm the GX context
    chunk_s, _ = _timed(lambda: validate_staged("vital_signs", "monitor", frame, quality))
    few = list(dict.fromkeys(frame["batch_id"]))[:20]
    per_batch_rows = int(frame["batch_id"].isin(few).sum())
    per_batch_s, _ = _timed(
        lambda: [validate_staged("vital_signs", "monitor", frame[frame["batch_id"] == b], quality) for b in few]
    )
    return {
        "hl7_parse_msgs_per_s": messages / parse_s,
        "python_hl7_msgs_per_s": len(sample) / naive_s,
        "hl7_speedup": (messages / parse_s) / (len(sample) / naive_s),
        "staging_rows_per_s": len(rows) / link_s,
        "validation_rows_per_s": len(frame) / chunk_s,
        "per_batch_validation_rows_per_s": per_batch_rows / per_batch_s,
        "validation_speedup": (len(frame) / chunk_s) / (per_batch_rows / per_batch_s),
        "readings": len(frame),
    }


def bench_ingest(clinics: int, days: int, workdir: Path) -> dict[str, Any]:
    month = _ingest_subprocess(workdir / "landing", workdir / "lake")
    stages = bench_ingest_stages(workdir / "landing", workdir / "lake")
    third = workdir / "third"
    shutil.rmtree(third, ignore_errors=True)
    simulate(
        SimulationOptions(
            out=third / "landing", clinics=clinics, days=max(1, days // 3), seed=7, truth_out=third / "truth.json"
        )
    )
    # RUSAGE_CHILDREN keeps the largest child seen so far: measure the smaller run in a fresh process tree.
    landing, lake = str(third / "landing"), str(third / "lake")
    smaller = _in_fresh_process("_ingest_subprocess", landing, lake)
    return {"month": month, "stages": stages, "third_of_month": smaller, "target_seconds": 120}


def _fhir_export_subprocess(lake: Path) -> dict[str, Any]:
    """Runs in a fresh process: the export's own time and peak memory."""
    from clinic_pipeline.fhir.export import export_fhir
    from clinic_pipeline.lake import Lake

    seconds, summary = _timed(lambda: export_fhir(Lake(lake)))
    return {"seconds": seconds, "resources": summary.total, "counts": summary.counts, "peak_rss_mib": _peak_rss_mib()}


def _safety_subprocess(lake: Path) -> dict[str, Any]:
    """Runs in a fresh process: marts then dashboard, each timed, and the peak memory."""
    from clinic_pipeline.dashboard.build import publish_dashboard
    from clinic_pipeline.lake import Lake
    from clinic_pipeline.safety.marts import build_marts

    marts_s, marts = _timed(lambda: build_marts(Lake(lake)))
    dashboard_s, index = _timed(lambda: publish_dashboard(Lake(lake), "bench"))
    site = Path(str(index)).parent
    return {
        "marts_seconds": marts_s,
        "dashboard_seconds": dashboard_s,
        "sessions": marts.rows.get("session_safety", 0),
        "dashboard_mib": sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 2**20,
        "peak_rss_mib": _peak_rss_mib(),
    }


def bench_safety(workdir: Path) -> dict[str, Any]:
    return _in_fresh_process("_safety_subprocess", workdir / "lake")


def _in_fresh_process(function: str, *paths: Path | str) -> dict[str, Any]:
    """`function(*paths)` of this module in a new interpreter: its own peak memory, no state shared."""
    args = ", ".join(f"Path({str(p)!r})" for p in paths)
    code = (
        f"import json; from pathlib import Path; from clinic_pipeline.bench import {function}; "
        f"print(json.dumps({function}({args})))"
    )
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(probe.stdout.strip().splitlines()[-1])


def bench_fhir(workdir: Path, sample_size: int = 3000) -> dict[str, Any]:
    import random

    import orjson

    from fhir_mappings.validation import model_class, validate_files

    lake = workdir / "lake"
    export = _in_fresh_process("_fhir_export_subprocess", lake)
    # The naive way on a sample drawn in proportion from every resource type of the same export.
    rng = random.Random(7)
    files = sorted((lake / "fhir" / "export").glob("*.ndjson"))
    lines = [line for f in files if f.stem != "OperationOutcome" for line in f.read_bytes().splitlines()]
    sample = [orjson.loads(line) for line in rng.sample(lines, min(sample_size, len(lines)))]
    for warm in {r["resourceType"]: r for r in sample}.values():  # build every model class outside the timing
        model_class(warm["resourceType"]).model_validate(warm).model_dump_json()
    # The median of three passes: the naive figure is the noisier one on a shared machine.
    naive_s = sorted(
        _timed(lambda: [model_class(r["resourceType"]).model_validate(r).model_dump_json() for r in sample])[0]
        for _ in range(3)
    )[1]
    check = workdir / "fhir-sample.ndjson"
    check.write_bytes(b"\n".join(rng.sample(lines, min(sample_size, len(lines)))) + b"\n")
    report = validate_files([check, *(f for f in files if f.stem in ("Organization", "Patient", "Encounter"))])
    # A sample's references point outside it; resolution is checked on whole exports by the tests.
    problems = [p for p in report.problems if "does not resolve" not in p.message]
    ours = export["resources"] / export["seconds"]
    naive = len(sample) / naive_s
    return {
        "export": export,
        "pipeline_resources_per_s": ours,
        "naive_resources_per_s": naive,
        "speedup": ours / naive,
        "target_speedup": 30,
        "validated_sample": len(sample),
        "sample_problems": len(problems),
    }


def run_benchmarks(clinics: int, days: int, workdir: Path) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    sessions = _sample_sessions(300)
    results = {
        "generate_network": bench_network_month(clinics, days, workdir),
        "hl7_writing": bench_hl7_writing(sessions),
        "ehr_writing": bench_ehr_writing(sessions, workdir),
    }
    results["ingest"] = bench_ingest(clinics, days, workdir)
    results["safety"] = bench_safety(workdir)
    results["fhir"] = bench_fhir(workdir)
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
    i, st = results["ingest"], results["ingest"]["stages"]
    m, third = i["month"], i["third_of_month"]
    print(
        f"ingest network-month   : {m['seconds']:7.1f} s  (target < {i['target_seconds']} s)  "
        f"{sum(m['rows_in'].values()):,} rows ({m['rows_per_s']:,.0f} rows/s) {m['rows_in']}, "
        f"reconciled: {m['all_reconciled']}"
    )
    print(
        f"  HL7 parsing          : {st['hl7_parse_msgs_per_s']:9,.0f} msg/s vs python-hl7 "
        f"{st['python_hl7_msgs_per_s']:,.0f} msg/s  -> x{st['hl7_speedup']:.1f}"
    )
    print(f"  staging (ref. join)  : {st['staging_rows_per_s']:9,.0f} rows/s")
    print(
        f"  validation (GX)      : {st['validation_rows_per_s']:9,.0f} rows/s per chunk vs per batch "
        f"{st['per_batch_validation_rows_per_s']:,.0f} rows/s  -> x{st['validation_speedup']:.1f}"
    )
    print(
        f"  peak memory          : {m['peak_rss_mib']:7.0f} MiB for the month vs {third['peak_rss_mib']:.0f} MiB "
        f"for a third of it  -> x{m['peak_rss_mib'] / third['peak_rss_mib']:.2f} (bounded by the chunk)"
    )
    sa = results["safety"]
    print(
        f"safety marts + dashboard: {sa['marts_seconds']:5.1f} s + {sa['dashboard_seconds']:.1f} s for "
        f"{sa['sessions']:,} sessions ({sa['dashboard_mib']:.1f} MiB site), peak RSS {sa['peak_rss_mib']:.0f} MiB"
    )
    f = results["fhir"]
    print(
        f"FHIR export            : {f['export']['seconds']:7.1f} s  {f['export']['resources']:,} resources, "
        f"{f['pipeline_resources_per_s']:,.0f}/s vs fhir.resources validate+serialize per resource "
        f"{f['naive_resources_per_s']:,.0f}/s  -> x{f['speedup']:.1f} (target x{f['target_speedup']}), "
        f"peak RSS {f['export']['peak_rss_mib']:.0f} MiB; validate-fhir on a sample of {f['validated_sample']}: "
        f"{f['sample_problems']} problems"
    )
    print(f"figures: {workdir / 'bench.json'}")
    targets = (
        g["seconds"] < g["target_seconds"],
        m["seconds"] < i["target_seconds"],
        f["speedup"] >= f["target_speedup"] and f["sample_problems"] == 0,
    )
    return 0 if all(targets) else 1
