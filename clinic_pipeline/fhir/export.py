"""The FHIR Bulk Data export of the lake: `fhir/export/<Type>.ndjson` + `manifest.json`, rejections quarantined.

The export is a full snapshot of the staged tables, rebuilt each run: the same staged data gives the same
bytes (deterministic ids, source order, fixed formats), so a rerun changes nothing and consumers can diff.
Rejected rows go to `quarantine/fhir/export.parquet` (table, row key, batch, rule, reason) and, as Bulk Data
asks, to an OperationOutcome NDJSON listed under `error` in the manifest. No PHI travels in either: row keys
are the network's own keys, reasons name fields and rules.

Each NDJSON file is written under a temporary name and renamed into place; the manifest is written last, so
a reader that starts from the manifest sees complete files.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from clinic_pipeline.lake import Lake
from fhir_mappings.identity import EXPORT_REJECTION, resource_id
from fhir_mappings.network import RESOURCE_TYPES, NetworkMapper, StagedNetwork

log = logging.getLogger("clinic_pipeline.fhir")

STAGED_TABLES = (
    "clinics",
    "patients",
    "infusion_sessions",
    "vital_signs",
    "questionnaire_responses",
    "clinician_ratings",
    "adverse_events",
)
# The columns the mapping reads of the wide file-source tables (the others are read whole).
COLUMNS = {
    "vital_signs": [
        "session_id",
        "patient_id",
        "observed_at",
        "sbp_mmhg",
        "dbp_mmhg",
        "hr_bpm",
        "spo2_pct",
        "rr_per_min",
        "temp_c",
        "batch_id",
    ],
    "questionnaire_responses": [
        "questionnaire_id",
        "instrument",
        "status",
        "session_id",
        "patient_id",
        "authored_at",
        "answers_json",
        "total_score",
        "score_band",
        "cssrs_risk",
        "batch_id",
    ],
    "clinician_ratings": [
        "rating_key",
        "instrument",
        "session_id",
        "patient_id",
        "rated_at",
        "items_json",
        "is_complete",
        "total_score",
        "batch_id",
    ],
}
EXPORT_DIR = ("fhir", "export")
ERROR_FILE = "OperationOutcome.ndjson"


@dataclass
class ExportSummary:
    counts: dict[str, int]
    rejected_by_rule: dict[str, int]
    manifest: Path
    source_rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def load_staged_network(lake: Lake) -> StagedNetwork:
    """The staged tables, plus the events the safety rules detected (from the marts, when built)."""
    from clinic_pipeline.fhir.detected import detected_events

    tables = {name: lake.read_parquets(lake.staged_table(name), COLUMNS.get(name)) for name in STAGED_TABLES}
    return StagedNetwork(**tables, detected_events=detected_events(lake, tables["infusion_sessions"]))


def as_of(staged: StagedNetwork) -> str:
    """The newest source time in the staged data: the export's transactionTime, stable across reruns."""
    times = [
        frame[column].max()
        for frame, column in (
            (staged.infusion_sessions, "updated_at"),
            (staged.vital_signs, "observed_at"),
            (staged.questionnaire_responses, "authored_at"),
            (staged.clinician_ratings, "rated_at"),
            (staged.adverse_events, "updated_at"),
        )
        if column in frame and len(frame)
    ]
    newest = max((t for t in times if pd.notna(t)), default=pd.Timestamp(0, tz="UTC"))
    return newest.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def export_fhir(lake: Lake) -> ExportSummary:
    staged = load_staged_network(lake)
    export_dir = lake.path(*EXPORT_DIR)
    export_dir.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex
    temporary = {t: export_dir / f".{t}.{run}.tmp" for t in RESOURCE_TYPES}
    handles = {t: temporary[t].open("wb") for t in RESOURCE_TYPES}
    counts: Counter[str] = Counter()
    mapper = NetworkMapper(staged)
    try:
        for group in mapper.groups():
            if group.lines:
                handles[group.resource_type].write(b"\n".join(group.lines) + b"\n")
                counts[group.resource_type] += len(group)
    except BaseException:
        for rtype, handle in handles.items():  # a failed export leaves the previous one in place, no debris
            handle.close()
            temporary[rtype].unlink()
        raise
    for handle in handles.values():
        handle.close()
    outputs = []
    for rtype in RESOURCE_TYPES:
        target = export_dir / f"{rtype}.ndjson"
        if counts[rtype]:
            temporary[rtype].rename(target)
            outputs.append({"type": rtype, "url": _url(target), "count": counts[rtype]})
        else:
            temporary[rtype].unlink()
            if target.exists():
                target.unlink()
    rejections = mapper.rejections()
    errors = _write_rejections(lake, export_dir, rejections)
    manifest = {
        "transactionTime": as_of(staged),
        "request": "clinic-pipeline export: the staged tables of the lake as FHIR R4 (4.0.1)",
        "requiresAccessToken": False,
        "output": outputs,
        "error": errors,
        "extension": {
            "fhirVersion": "4.0.1",
            "sourceRows": {name: len(getattr(staged, name)) for name in STAGED_TABLES},
            "rejectedRows": _rejected_rows(rejections),
        },
    }
    target = export_dir / "manifest.json"
    lake.write_bytes(target, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    rejected_by_rule = dict(sorted(Counter(rejections["rule"]).items()))
    log.info(
        "FHIR export: %s resources %s, %s rows rejected %s",
        sum(counts.values()),
        dict(counts),
        len(rejections),
        rejected_by_rule,
    )
    return ExportSummary(dict(counts), rejected_by_rule, Path(str(target)), manifest["extension"]["sourceRows"])


def _url(path: Any) -> str:
    return path.as_uri() if hasattr(path, "as_uri") and str(path).startswith("/") else str(path)


def _rejected_rows(rejections: pd.DataFrame) -> dict[str, dict[str, int]]:
    table = rejections.assign(source_table=rejections["source_table"].replace("", "export_gate"))
    grouped = table.groupby(["source_table", "rule"]).size()
    out: dict[str, dict[str, int]] = {}
    for (source, rule), count in grouped.items():
        out.setdefault(str(source), {})[str(rule)] = int(count)
    return out


def _write_rejections(lake: Lake, export_dir: Any, rejections: pd.DataFrame) -> list[dict[str, Any]]:
    lake.write_parquet(lake.path("quarantine", "fhir", "export.parquet"), rejections.astype("string"))
    target = export_dir / ERROR_FILE
    if rejections.empty:
        if target.exists():
            target.unlink()
        return []
    lines = [orjson.dumps(_outcome(row)) for row in rejections.itertuples(index=False)]
    lake.write_bytes(target, b"\n".join(lines) + b"\n")
    return [{"type": "OperationOutcome", "url": _url(target), "count": len(lines)}]


def _outcome(row: Any) -> dict[str, Any]:
    """One OperationOutcome per rejected row: what was not exported and why (Bulk Data `error` file)."""
    source = row.source_table or "export gate"
    key = f"{row.resource_type}|{row.source_table}|{row.row_key}|{row.rule}"
    return {
        "resourceType": "OperationOutcome",
        "id": resource_id("OperationOutcome", EXPORT_REJECTION, key),
        "issue": [
            {
                "severity": "error",
                "code": "not-found" if row.rule == "reference_unresolved" else "invalid",
                "diagnostics": (
                    f"{row.resource_type} not exported: {source} row {row.row_key} (batch {row.batch_id}): "
                    f"{row.rule}: {row.reason}"
                ),
            }
        ],
    }
