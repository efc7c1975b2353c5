"""Bodies of the safety DAG's tasks: marts, alerts, dashboard (each reads and writes the lake; no big XComs)."""

from __future__ import annotations

from typing import Any

from clinic_pipeline.lake import Lake
from clinic_pipeline.orchestration import settings


def build_safety_marts() -> dict[str, Any]:
    from clinic_pipeline.safety.marts import build_marts

    summary = build_marts(Lake(settings.lake_root()))
    return {"as_of": summary.as_of, "sessions": summary.rows.get("session_safety", 0), "seconds": summary.seconds}


def publish_safety_dashboard(run_id: str) -> str:
    from clinic_pipeline.dashboard.build import publish_dashboard

    return str(publish_dashboard(Lake(settings.lake_root()), run_id))
