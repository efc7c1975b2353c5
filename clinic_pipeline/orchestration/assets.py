"""The assets the DAGs are scheduled on and produce.

Landing assets carry the watchers (file markers by default, Redis Streams in production); staged assets are
the outlets downstream DAGs (FHIR, safety) are scheduled on.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAny, AssetOrTimeSchedule, AssetWatcher
from airflow.timetables.trigger import CronTriggerTimetable

from clinic_pipeline.orchestration import settings

SOURCES = ("ehr", "monitor", "epro", "redcap")
STAGED_TABLES = {
    "ehr": ("patients", "infusion_sessions", "adverse_events", "concomitant_medications", "clinics"),
    "monitor": ("vital_signs",),
    "epro": ("questionnaire_responses",),
    "redcap": ("clinician_ratings",),
}


def _watcher(source: str) -> AssetWatcher:
    if settings.event_bus() == "redis":
        from clinic_pipeline.triggers.redis_streams import RedisStreamEventTrigger

        trigger = RedisStreamEventTrigger(source=source, stream=settings.event_stream())
        return AssetWatcher(name=f"{source}_batches_on_redis", trigger=trigger)
    from clinic_pipeline.triggers.landing_markers import LandingMarkerTrigger

    directory = str(settings.landing_dir() / "_ready" / source)
    return AssetWatcher(name=f"{source}_batch_markers", trigger=LandingMarkerTrigger(directory=directory))


def landing_asset(source: str) -> Asset:
    """Batches announced by a clinic system (the asset whose watcher wakes the ingest DAG)."""
    return Asset(
        name=f"landing_{source}",
        uri=f"file://{settings.landing_dir() / '_ready' / source}",
        group="landing",
        watchers=[_watcher(source)],
    )


def staged_asset(table: str) -> Asset:
    return Asset(name=f"staged_{table}", uri=_lake_uri("staged", table), group="staged")


def ingest_schedule(*sources: str, also_after: tuple[Asset, ...] = ()) -> AssetOrTimeSchedule:
    """Events wake the DAG at once; the cron sweep guarantees nothing waits for a next event (events may be
    coalesced or left pending by the scheduler, apache/airflow#56050). `also_after`: upstream assets whose
    update may unblock waiting batches (file batches wait until the EHR has been read through their day)."""
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(settings.sweep_cron(), timezone="UTC"),
        assets=AssetAny(*(landing_asset(s) for s in sources), *also_after),
    )


def _lake_uri(*parts: str) -> str:
    root = settings.lake_root().rstrip("/")
    path = "/".join(parts)
    return f"{root}/{path}" if "://" in root else f"file://{root}/{path}"


def fhir_export_asset() -> Asset:
    """The FHIR Bulk Data export (its manifest is the commit point)."""
    return Asset(name="fhir_export", uri=_lake_uri("fhir", "export"), group="fhir")


def safety_marts_asset() -> Asset:
    """The safety marts (their manifest is written last)."""
    return Asset(name="safety_marts", uri=_lake_uri("marts"), group="safety")


def safety_dashboard_asset() -> Asset:
    """The published safety dashboard (`dashboards/latest/`)."""
    return Asset(name="safety_dashboard", uri=_lake_uri("dashboards", "latest"), group="safety")


def clinical_staged_assets() -> list[Asset]:
    """The staged tables the safety marts and the FHIR export are built from."""
    return [staged_asset(t) for tables in STAGED_TABLES.values() for t in tables]
