"""`clinic-pipeline`: what a data engineer runs outside the Airflow UI.

clinic-pipeline simulate           generate a synthetic ketamine clinic network into a landing zone
clinic-pipeline run                the whole pipeline in-process: ingest, FHIR export (and delivery)
clinic-pipeline replay-quarantine  re-ingest quarantined rows after a fix
clinic-pipeline validate-fhir      validate FHIR R4 NDJSON or Bundle files, printing every problem
clinic-pipeline bench              the performance benchmark (figures and ratios)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _simulate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="generate a synthetic clinic network (EHR database, HL7 monitor batches, ePRO, REDCap)",
        description=(
            "Write what the clinic systems of a synthetic ketamine clinic network emit, day by day, into a "
            "landing zone: the EHR database, HL7 v2 ORU^R01 monitor batches, FHIR QuestionnaireResponse NDJSON "
            "and REDCap CSV exports, each batch announced by a marker file (and a Redis Stream entry). Running "
            "it again on the same --out continues the network where it stopped. Ground truth goes to "
            "--truth-out, never into the landing zone."
        ),
    )
    p.add_argument("--out", type=Path, default=Path("landing"), help="landing zone directory (default: landing)")
    p.add_argument("--clinics", type=int, default=5, help="number of clinics (default: 5)")
    p.add_argument("--days", type=int, default=None, help="days to simulate (default 7; unlimited with --continuous)")
    p.add_argument("--seed", type=int, default=7, help="random seed; same seed and options give identical bytes")
    p.add_argument(
        "--faults",
        type=float,
        default=0.0,
        metavar="RATE",
        help="probability that a unit (message, line, row, file) carries an injected fault (default 0)",
    )
    p.add_argument(
        "--ehr-url",
        default=None,
        help="SQLAlchemy URL of the EHR database (default: sqlite file <out>/ehr.sqlite)",
    )
    p.add_argument("--redis-url", default=None, help="also announce each batch on a Redis Stream at this URL")
    p.add_argument("--redis-stream", default="clinic-pipeline:batches", help="Redis Stream name")
    p.add_argument(
        "--truth-out",
        type=Path,
        default=None,
        help="ground-truth JSON file (default: <out>-truth.json next to the landing zone)",
    )
    p.add_argument("--start-date", default=None, help="first simulated day, YYYY-MM-DD (default from the config)")
    p.add_argument("--continuous", action="store_true", help="keep producing one simulated day per --interval")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between simulated days with --continuous")
    p.add_argument("--config", type=Path, default=None, help="alternative network config YAML")
    p.set_defaults(handler=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from clinic_pipeline.simulator.runner import SimulationOptions, simulate

    truth_out = args.truth_out
    if truth_out is not None and args.out.resolve() in truth_out.resolve().parents:
        print("error: --truth-out must be outside the landing zone (--out)", file=sys.stderr)
        return 2
    days = args.days if args.days is not None else (None if args.continuous else 7)
    summary = simulate(
        SimulationOptions(
            out=args.out,
            clinics=args.clinics,
            days=days,
            seed=args.seed,
            faults=args.faults,
            ehr_url=args.ehr_url,
            redis_url=args.redis_url,
            redis_stream=args.redis_stream,
            truth_out=truth_out,
            start_date=args.start_date,
            continuous=args.continuous,
            interval_s=args.interval,
            config_path=args.config,
        )
    )
    print(
        f"simulated days {summary.first_day}..{summary.last_day}: {summary.sessions} sessions, "
        f"{summary.batches} batches, {summary.faults} faults in total; ground truth: {summary.truth_path}"
    )
    return 0


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the whole pipeline in-process over a landing zone (no scheduler)",
        description=(
            "Ingest every announced batch of a landing zone into the lake: EHR (incremental), monitor HL7, "
            "ePRO FHIR and REDCap. Writes quality/reconciliation.json, prints a short table, then writes the "
            "FHIR R4 Bulk Data export (fhir/export/manifest.json) and, with --fhir-url, delivers it as "
            "transaction Bundles. Exits non-zero when a batch does not reconcile (rows in = staged + "
            "quarantined), a quality gate stopped a batch, or a delivery did not complete."
        ),
    )
    p.add_argument("--landing", type=Path, required=True, help="landing zone directory")
    p.add_argument("--lake", type=str, required=True, help="lake root (folder or fsspec URL)")
    p.add_argument("--ehr-url", default=None, help="EHR SQLAlchemy URL (default: <landing>/ehr.sqlite)")
    p.add_argument("--chunk-batches", type=int, default=300, help="batches validated together (bounds memory)")
    p.add_argument("--workers", type=int, default=2, help="processes for the file sources (1 = sequential)")
    p.add_argument("--fhir-url", default=None, help="FHIR R4 server base URL to deliver the export to")
    p.add_argument("--fhir-token", default=None, help="bearer token for the FHIR server (default: none)")
    p.set_defaults(handler=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    from clinic_pipeline.ingest.run import reconciliation_table, run_pipeline

    summary = run_pipeline(
        args.landing, args.lake, ehr_url=args.ehr_url, chunk_batches=args.chunk_batches, workers=args.workers
    )
    print(reconciliation_table(summary.reports))
    print(f"reconciliation: {summary.reconciliation_path}")
    if summary.data_docs:
        print(f"data docs: {summary.data_docs}")
    reviewed = _safety_review(args.lake)
    delivered = _export_and_deliver(args.lake, args.fhir_url, args.fhir_token)
    return 0 if summary.ok and reviewed and delivered else 1


def _safety_review(lake_root: str) -> bool:
    """Marts, alerts, dashboard: what the safety DAG does. Alerts go to the channels whose Airflow connection
    is defined (e.g. AIRFLOW_CONN_CLINIC_ALERTS_WEBHOOK); without one they wait in the lake as pending."""
    from clinic_pipeline.alerts.delivery import send_alerts
    from clinic_pipeline.alerts.evaluate import evaluate_alerts
    from clinic_pipeline.alerts.task import configured_notifiers
    from clinic_pipeline.dashboard.build import publish_dashboard
    from clinic_pipeline.lake import Lake
    from clinic_pipeline.safety.marts import build_marts

    lake = Lake(lake_root)
    marts = build_marts(lake)
    print(f"safety marts: {len(marts.rows)} marts as of {marts.as_of} ({marts.seconds:.1f} s): {lake.path('marts')}")
    notifiers, problems = configured_notifiers()
    report = send_alerts(lake, evaluate_alerts(lake), notifiers)
    channels = ", ".join(report.channels) or "no channel configured: kept pending in the lake"
    counts = f"{report.raised} raised ({report.new} new), {report.sent} sent, {report.pending} pending"
    print(f"safety alerts: {counts} ({channels})")
    for problem in [*problems, *report.errors]:
        print(f"  {problem}", file=sys.stderr)
    print(f"safety dashboard: {publish_dashboard(lake)}")
    return not problems and report.ok


def _export_and_deliver(lake_root: str, fhir_url: str | None, token: str | None) -> bool:
    from clinic_pipeline.fhir.delivery import FhirTarget, deliver
    from clinic_pipeline.fhir.export import export_fhir
    from clinic_pipeline.lake import Lake

    lake = Lake(lake_root)
    export = export_fhir(lake)
    counts = ", ".join(f"{n} {t}" for t, n in export.counts.items())
    rejected = sum(export.rejected_by_rule.values())
    print(f"FHIR export: {export.total} resources ({counts}); {rejected} rows not exported {export.rejected_by_rule}")
    print(f"FHIR manifest: {export.manifest}")
    if not fhir_url:
        return True
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    report = deliver(lake, FhirTarget(fhir_url, headers))
    print(
        f"FHIR delivery to {fhir_url}: {report.sent}/{report.planned} bundles sent ({report.entries} entries, "
        f"{report.created} created, {report.updated} updated), {report.failed} rejected, {report.pending} pending"
    )
    for error in report.errors:
        print(f"  {error}", file=sys.stderr)
    return report.ok


def _replay_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay-quarantine",
        help="re-ingest quarantined rows after a fix, through the same gates",
        description=(
            "Send quarantined rows (all, or those of one source, rule or batch) through parsing, reference "
            "checks and quality gates again. Rows that pass are staged in their original batch; rows that "
            "still fail stay quarantined with their current rule. Reconciliation is kept per batch."
        ),
    )
    p.add_argument("--lake", type=str, required=True, help="lake root (folder or fsspec URL)")
    p.add_argument("--source", choices=["ehr", "monitor", "epro", "redcap"], default=None)
    p.add_argument("--rule", default=None, help="only rows quarantined by this rule (e.g. unknown_session)")
    p.add_argument("--batch", default=None, help="only rows of this batch id")
    p.set_defaults(handler=_run_replay)


def _run_replay(args: argparse.Namespace) -> int:
    import datetime as dt

    from clinic_pipeline.ingest.replay import replay_quarantine
    from clinic_pipeline.ingest.run import write_reconciliation
    from clinic_pipeline.lake import Lake

    summary = replay_quarantine(
        args.lake, source=args.source, rule=args.rule, batch=args.batch, now=dt.datetime.now(dt.UTC)
    )
    write_reconciliation(Lake(args.lake))
    print(
        f"replayed {summary.replayed} rows from {summary.batches} batches: {summary.staged} staged, "
        f"{summary.still_quarantined} still quarantined"
    )
    return 0


def _validate_fhir_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate-fhir",
        help="validate FHIR R4 NDJSON or Bundle files and print each problem with its resource and path",
        description=(
            "Validate every resource of the given files (NDJSON, one resource per line, or a JSON Bundle) "
            "against FHIR R4: structure (fhir.resources R4B models), required value sets, the R4 vital-signs "
            "profiles, UCUM units, and references that must resolve within the files given together. Prints "
            "one line per problem (file:line Type/id path: message) and exits 1 when there is any."
        ),
    )
    p.add_argument("paths", type=Path, nargs="+", help="NDJSON or Bundle JSON files (a folder: its *.ndjson)")
    p.set_defaults(handler=_run_validate_fhir)


def _run_validate_fhir(args: argparse.Namespace) -> int:
    from fhir_mappings.validation import validate_files

    files: list[Path] = []
    for path in args.paths:
        files += sorted(path.glob("*.ndjson")) if path.is_dir() else [path]
    missing = [f for f in files if not f.exists()]
    if missing or not files:
        print(f"error: no such file: {', '.join(map(str, missing)) or 'no files given'}", file=sys.stderr)
        return 2
    report = validate_files(files)
    for problem in report.problems:
        print(problem)
    by_type = ", ".join(f"{n} {t}" for t, n in sorted(report.by_type.items()))
    print(f"{report.checked} resources checked ({by_type}): {len(report.problems)} problems")
    return 0 if report.ok else 1


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="performance benchmark: figures and ratios against the naive way")
    p.add_argument("--clinics", type=int, default=50)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--workdir", type=Path, default=Path("build/bench"))
    p.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from clinic_pipeline.bench import run_benchmarks

    return run_benchmarks(args.clinics, args.days, args.workdir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clinic-pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _simulate_parser(sub)
    _run_parser(sub)
    _replay_parser(sub)
    _validate_fhir_parser(sub)
    _bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
