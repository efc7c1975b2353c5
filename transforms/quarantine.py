"""Quarantine records: a rejected row, the rule it broke and why, with the raw record for replay.

Every record names the batch, the source, the row key and the rule; the reason never contains PHI (it names
fields and values of measurements, not people). `row_count` is 1 except for a whole file quarantined before
its rows could be read, where it is the number of records the sender declared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SEVERITIES = ("critical", "error", "warning", "info")
QUARANTINE_COLUMNS = ["batch_id", "source", "row_key", "rule", "severity", "reason", "raw_record", "row_count"]


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    batch_id: str
    source: str
    row_key: str
    rule: str
    severity: str
    reason: str
    raw_record: str
    row_count: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def quarantine_table(records: list[QuarantineRecord]) -> Any:
    """Records as a pyarrow Table with the same schema as `quarantine_frame` (cheaper for small batches)."""
    import pyarrow as pa

    schema = pa.schema([(c, pa.int64() if c == "row_count" else pa.large_string()) for c in QUARANTINE_COLUMNS])
    return pa.Table.from_pylist([r.as_dict() for r in records], schema=schema)


def quarantine_frame(records: list[QuarantineRecord]) -> Any:
    """Records as a DataFrame with a stable schema (pandas imported here: callers may be light)."""
    import pandas as pd

    frame = pd.DataFrame([r.as_dict() for r in records], columns=QUARANTINE_COLUMNS)
    return frame.astype({c: "string" for c in QUARANTINE_COLUMNS if c != "row_count"}).astype({"row_count": "int64"})
