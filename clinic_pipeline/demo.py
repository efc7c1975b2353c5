"""`make demo` / `make up`: the whole pipeline event-driven under a real local Airflow, then where to look.

1. starts Airflow on its embedded default (`airflow standalone`: SQLite, LocalExecutor with 4 workers, scheduler,
   dag-processor, triggerer, api-server) with AIRFLOW_HOME=./airflow-home, the repo's dags/ and plugins/, the
   DAGs unpaused, and the cron sweep set to 29 February so that only events start runs; waits until the five
   DAGs are registered, the triggerer runs the four landing watchers and the api-server answers;
2. simulates a small clinic network into ./data/landing: each clinic system writes its batch and then its
   marker file in `_ready/<source>/`, the event the watchers' triggers turn into asset events;
3. waits (one progress line per change) until every announced batch is in the lake's ledger, the ingest DAGs,
   `safety_review` and `fhir_export` have no run queued or running and the latest run of each succeeded;
   a failed run stops the demo with its DAG, task and task log tail;
4. prints the runs, the event-to-dashboard latency per batch, the reconciliation and where everything is;
5. stops Airflow (the whole process group), or with --keep-running (`make up`) leaves it up for `make down`.

Exit code 0 only when every DAG run succeeded and every printed path exists. The in-process path without a
scheduler is `clinic-pipeline run`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from clinic_pipeline.standalone import (
    DAG_IDS,
    AirflowNotReady,
    LocalAirflow,
    PipelineFailed,
    PipelineState,
    announced_batches,
    event_to_dashboard,
    latency_summary,
    ledger_times,
    pick_port,
    running_pid,
    wait_for_pipeline,
)

DATA = Path("data")
HOME = Path("airflow-home")
PLUGIN_ROUTE = "plugin/clinic-safety-dashboard"  # plugins/clinic_dashboards.py: UI_ROUTE


def _args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m clinic_pipeline.demo", description=__doc__.split("\n")[0])
    p.add_argument("--clinics", type=int, default=int(env("CLINIC_DEMO_CLINICS", "4")), help="clinics (default 4)")
    p.add_argument("--days", type=int, default=int(env("CLINIC_DEMO_DAYS", "2")), help="simulated days (default 2)")
    p.add_argument("--faults", type=float, default=0.02, help="injected fault rate (default 0.02)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--interval", type=float, default=0.0, help="seconds between simulated days (default 0)")
    p.add_argument("--port", type=int, default=int(env("CLINIC_AIRFLOW_PORT", "8080")), help="api-server port")
    p.add_argument("--host", default=env("CLINIC_AIRFLOW_HOST", "127.0.0.1"), help="api-server bind address")
    p.add_argument("--parallelism", type=int, default=4, help="LocalExecutor workers (default 4)")
    p.add_argument("--timeout", type=float, default=float(env("CLINIC_DEMO_TIMEOUT", "1200")), help="seconds")
    p.add_argument("--data", type=Path, default=DATA, help="landing zone and lake root (default ./data)")
    p.add_argument("--home", type=Path, default=HOME, help="AIRFLOW_HOME (default ./airflow-home)")
    p.add_argument("--keep-running", action="store_true", help="leave Airflow running at the end (make up)")
    return p.parse_args(argv)


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops Airflow too, like Ctrl-C
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    if (pid := running_pid(args.home)) is not None:
        _say(f"An Airflow started from {args.home} is still running (process group {pid}): `make down` first.")
        return 2
    for folder in (args.data, args.home):  # a fresh network and a fresh metadata DB on every run
        shutil.rmtree(folder, ignore_errors=True)
    port, note = pick_port(args.port)
    if note:
        _say(note)
    airflow = LocalAirflow(args.home, args.data, port, host=args.host, parallelism=args.parallelism)
    ok = False
    stop = not args.keep_running
    _say(
        f"1/5 starting Airflow {airflow.url} (airflow standalone: scheduler, dag-processor, triggerer, api-server; "
        f"SQLite, LocalExecutor x{args.parallelism}); AIRFLOW_HOME={args.home}/, log {airflow.log_path}"
    )
    try:
        airflow.start()
        ready = airflow.wait_ready(say=_say)
        _say(f"    Airflow ready in {ready:.0f} s: 5 DAGs unpaused, 4 landing watchers running, sweep disabled")
        _say(f"    watch it at {airflow.url}/ (user admin, password {airflow.admin_password()})")
        _say(
            f"2/5 the clinic systems announce their batches: {args.clinics} clinics x {args.days} days, "
            f"fault rate {args.faults:g} (every batch: files, then its marker in {args.data}/landing/_ready/)"
        )
        summary = _simulate(args)
        _say(f"    {summary.sessions} infusion sessions, {summary.batches} batches, {summary.faults} injected faults")
        _say("3/5 waiting for the DAG runs: ingest_* -> safety_review, fhir_export (progress on change)")
        state = _wait(airflow, args.timeout)
        _say("4/5 results")
        ok = _report(airflow, args, state, time.monotonic() - started)
    except (AirflowNotReady, PipelineFailed) as exc:
        _say(f"\nDEMO FAILED: {exc}")
        _say(f"Airflow's own output: {airflow.log_path}; task logs: {args.home / 'logs'}/")
    except KeyboardInterrupt:
        _say("\ninterrupted")
        stop = True
    finally:
        if stop:
            _say("5/5 stopping Airflow (every process it started)...")
            if left := airflow.stop():
                _say(f"    WARNING still running after the stop: pids {sorted(left)}")
                ok = False
            _say(f"    stopped. Total {time.monotonic() - started:.0f} s. `make up` keeps Airflow up to browse the UI.")
        elif airflow.alive():
            _say(
                f"5/5 Airflow keeps running at {airflow.url} (process group {airflow.proc.pid}, log "
                f"{airflow.log_path}). Stop it with: make down"
            )
    return 0 if ok else 1


def _simulate(args: argparse.Namespace):
    from clinic_pipeline.simulator.runner import SimulationOptions, simulate

    return simulate(
        SimulationOptions(
            out=args.data / "landing",
            clinics=args.clinics,
            days=args.days,
            seed=args.seed,
            faults=args.faults,
            truth_out=args.data / "truth.json",
            continuous=args.interval > 0,
            interval_s=args.interval,
        )
    )


def _wait(airflow: LocalAirflow, timeout: float) -> PipelineState:
    return wait_for_pipeline(airflow, DAG_IDS, timeout=timeout, say=_say)


def _report(airflow: LocalAirflow, args: argparse.Namespace, state: PipelineState, elapsed: float) -> bool:
    lake = args.data / "lake"
    _say(f"    {'DAG':<28} {'runs':>4} {'succeeded':>9} {'by event':>8} {'last run':>8}")
    for dag_id in DAG_IDS:
        runs = state.runs_of(dag_id)
        by_event = sum(r.run_type == "asset_triggered" for r in runs)
        last = runs[-1].seconds if runs else None
        succeeded = sum(r.state == "success" for r in runs)
        _say(f"    {dag_id:<28} {len(runs):>4} {succeeded:>9} {by_event:>8} {last or 0:>7.0f}s")
    all_ok = all(r.state == "success" for r in state.runs) and all(state.runs_of(d) for d in DAG_IDS)

    rows = event_to_dashboard(announced_batches(args.data / "landing"), ledger_times(lake), state.tries)
    latency = latency_summary(rows)
    (args.data / "event_to_dashboard.json").write_text(json.dumps({"summary": latency, "batches": rows}, indent=1))
    if latency.get("on_dashboard"):
        _say(
            f"    event -> dashboard (marker written -> dashboard published with the batch), "
            f"{latency['on_dashboard']}/{latency['batches']} batches: median {latency['median_s']:.0f} s, "
            f"p95 {latency['p95_s']:.0f} s, max {latency['max_s']:.0f} s (all batches announced at once)"
        )
    reconciliation = lake / "quality" / "reconciliation.json"
    recon = json.loads(reconciliation.read_text()) if reconciliation.exists() else {"batches": []}
    batches = recon["batches"]
    _say(
        f"    reconciliation: {len(batches)} batches, rows in {sum(b['rows_in'] for b in batches)} = staged "
        f"{sum(b['rows_staged'] for b in batches)} + quarantined {sum(b['rows_quarantined'] for b in batches)}; "
        f"all reconciled: {recon.get('all_reconciled')}"
    )

    password = airflow.admin_password()
    places = {
        "safety dashboard (static, opens offline)": lake / "dashboards" / "latest" / "index.html",
        "FHIR R4 Bulk Data export manifest": lake / "fhir" / "export" / "manifest.json",
        "quality report (GX Data Docs)": lake / "quality" / "data_docs" / "index.html",
        "reconciliation (rows in = staged + held)": reconciliation,
        "safety marts": lake / "marts" / "_manifest.json",
        "quarantine (rows with batch, key, rule)": lake / "quarantine",
        "event -> dashboard latency per batch": args.data / "event_to_dashboard.json",
    }
    _say(f"\nAll {len(state.runs)} DAG runs succeeded in {elapsed:.0f} s.\n" if all_ok else "\nSome DAG runs failed.\n")
    _say("Where to look:")
    for what, path in places.items():
        mark = "" if path.exists() else "   MISSING"
        _say(f"  {what + ':':<44} {path.resolve()}{mark}")
    login = f"user admin, password {password}" if password else "user admin"
    _say(f"  {'Airflow UI:':<44} {airflow.url}/  ({login}; kept in {airflow.password_file.resolve()})")
    _say(f"  {'the dashboard inside the Airflow UI:':<44} {airflow.url}/{PLUGIN_ROUTE}  (Browse -> Safety dashboard)")
    if not args.keep_running:
        _say("  (the Airflow UI links work while Airflow runs: `make up` keeps it running, `make down` stops it)")
    missing = [str(p) for p in places.values() if not p.exists()]
    if missing:
        _say(f"DEMO FAILED: missing {', '.join(missing)}")
    return all_ok and not missing


if __name__ == "__main__":
    sys.exit(main())
