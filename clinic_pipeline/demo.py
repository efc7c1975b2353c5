"""`make demo`: a synthetic clinic network, ingested into the lake, with the places to look at printed.

Runs the pipeline in-process on the embedded default (SQLite EHR, marker files, local lake under ./data).
The event-driven run under a real Airflow scheduler and triggerer is `airflow standalone` with dags/ (see
README); the dashboards and FHIR export arrive with their own issues.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from clinic_pipeline.ingest.run import reconciliation_table, run_pipeline
from clinic_pipeline.simulator.runner import SimulationOptions, simulate

DATA = Path("data")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    shutil.rmtree(DATA, ignore_errors=True)
    landing, lake = DATA / "landing", DATA / "lake"
    print("1/2 simulating 5 ketamine clinics for 7 days (2 % of records with injected faults)...")
    summary = simulate(
        SimulationOptions(out=landing, clinics=5, days=7, seed=7, faults=0.02, truth_out=DATA / "truth.json")
    )
    print(f"    {summary.sessions} infusion sessions, {summary.batches} batches, {summary.faults} injected faults")
    print("2/2 ingesting every announced batch: raw -> parse -> stage -> quality gates -> staged + quarantine...")
    run = run_pipeline(landing, lake)
    print(reconciliation_table(run.reports))
    print("\nWhere to look:")
    print(f"  landing zone (what the clinic systems wrote): {landing}/  (EHR: {landing / 'ehr.sqlite'})")
    print(f"  staged tables (Parquet):                      {lake / 'staged'}/")
    print(f"  quarantine (rows with batch, key, rule):      {lake / 'quarantine'}/")
    print(f"  reconciliation (rows in = staged + held):     {run.reconciliation_path}")
    print(f"  quality report (GX Data Docs):                {run.data_docs}")
    print(f"  ground truth of the simulation:               {DATA / 'truth.json'}")
    return 0 if run.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
