"""Bodies of the FHIR DAG's tasks: export the lake as FHIR R4, then deliver it to the clinic network's server.

The FHIR server is the Airflow connection `clinic_fhir` (CLINIC_FHIR_CONN to use another id): host as a full
base URL (`http://hapi:8080/fhir`) or host + schema + port + extra `{"path": "/fhir"}`; login/password give
Basic auth, extra `{"token": ...}` a bearer token, extra `{"timeout": 30, "max_attempts": 6}` tune retries.
Without the connection the export is still written and delivery is skipped (said so in the task log).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from clinic_pipeline.lake import Lake
from clinic_pipeline.orchestration import settings

log = logging.getLogger("clinic_pipeline.fhir")


def fhir_conn_id() -> str:
    return os.environ.get("CLINIC_FHIR_CONN", "clinic_fhir")


def export_bulk() -> dict[str, Any]:
    from clinic_pipeline.fhir.export import export_fhir

    summary = export_fhir(Lake(settings.lake_root()))
    return {"manifest": str(summary.manifest), "resources": summary.counts, "rejected": summary.rejected_by_rule}


def target_from_connection(conn: Any) -> Any:
    import base64

    from clinic_pipeline.fhir.delivery import FhirTarget

    extra = conn.extra_dejson or {}
    host = conn.host or ""
    if "://" in host:
        base = host
    else:
        port = f":{conn.port}" if conn.port else ""
        base = f"{conn.schema or 'http'}://{host}{port}{extra.get('path', '')}"
    headers = {}
    if extra.get("token"):
        headers["Authorization"] = f"Bearer {extra['token']}"
    elif conn.login:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode()
    return FhirTarget(
        base,
        headers,
        timeout_s=float(extra.get("timeout", 30)),
        max_attempts=int(extra.get("max_attempts", 6)),
    )


def deliver_export() -> dict[str, Any]:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowException, AirflowSkipException

    from clinic_pipeline.fhir.delivery import deliver

    try:
        conn = BaseHook.get_connection(fhir_conn_id())
    except Exception as error:  # no connection configured: the export stands alone
        raise AirflowSkipException(f"no Airflow connection {fhir_conn_id()!r}: FHIR delivery skipped") from error
    report = deliver(Lake(settings.lake_root()), target_from_connection(conn))
    summary = {k: getattr(report, k) for k in ("planned", "sent", "failed", "pending", "entries", "created", "updated")}
    if not report.ok:  # retried by Airflow: pending bundles stay in the outbox and go out on the next try
        raise AirflowException(f"FHIR delivery incomplete: {summary}; {report.errors[:3]}")
    return summary
