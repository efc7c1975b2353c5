"""Bodies of the ingest tasks: call the pipeline functions, return a small summary, fail red when needed.

A run that processed nothing is skipped, so it emits no asset event and wakes nothing downstream.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from clinic_pipeline.ingest.outcome import BatchReport
from clinic_pipeline.lake import Lake
from clinic_pipeline.orchestration import settings

log = logging.getLogger("clinic_pipeline.ingest")


def _finish(reports: list[BatchReport]) -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from clinic_pipeline.ingest.run import reconciliation_table, write_reconciliation

    if not reports:
        raise AirflowSkipException("no new batch: nothing to ingest")
    write_reconciliation(Lake(settings.lake_root()))
    log.info("ingest summary\n%s", reconciliation_table(reports))
    bad = [r.batch_id for r in reports if not r.reconciled or r.status == "gate_failed"]
    if bad:  # not retried: the data must be fixed (or the gate threshold reviewed) first
        raise AirflowFailException(f"batches stopped by a quality gate or not reconciled: {bad}")
    return {
        "batches": len(reports),
        "rows_in": sum(r.rows_in for r in reports),
        "rows_staged": sum(r.rows_staged for r in reports),
        "rows_quarantined": sum(r.rows_quarantined for r in reports),
    }


def ingest_ehr_changes(run_started: dt.datetime) -> dict[str, Any]:
    from clinic_pipeline.ingest.ehr_source import ingest_ehr

    report = ingest_ehr(settings.ehr_url(), settings.landing_dir(), Lake(settings.lake_root()), now=run_started)
    return _finish([report] if report else [])


def ingest_files(source: str) -> dict[str, Any]:
    from clinic_pipeline.ingest.file_sources import ingest_file_source
    from clinic_pipeline.ingest.landing import ehr_ingested_through

    lake = Lake(settings.lake_root())
    landing = settings.landing_dir()
    reports = ingest_file_source(
        source, landing, lake, wait_for_ehr=True, ehr_through=ehr_ingested_through(landing, lake)
    )
    return _finish(reports)


def build_quality_docs() -> str:
    from clinic_pipeline.quality.gates import build_data_docs

    return str(build_data_docs(Lake(settings.lake_root()).quality_dir))
