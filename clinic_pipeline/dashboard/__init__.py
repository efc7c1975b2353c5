"""The safety dashboard: a static, self-contained site built from the publication marts, every count
suppressed (no count from 1 to 10 shown or derivable). Entry point: `publish_dashboard(lake, run_id)`."""

from clinic_pipeline.dashboard.build import publish_dashboard

__all__ = ["publish_dashboard"]
