"""The alert ledger: what was raised, on which channels it was delivered, what is still pending.

`state/alerts/ledger.parquet` in the lake (the access-controlled state zone, next to the pseudonym lookup),
one row per alert, rewritten atomically (temp then rename, `Lake.write_parquet`) after every change:

    dedupe_key      kind + source key (AE id, session + rule, questionnaire + rule): internal, never sent
    alert_ref       random reference quoted in the message (receiver-side idempotency key)
    kind, priority, clinic_id
    status          pending | sent (sent = delivered on every channel of the run that delivered it last)
    channels_sent   comma-separated channels that confirmed delivery (e.g. "smtp:clinic_alerts_smtp")
    attempts        delivery attempts that failed or succeeded, over all runs
    raised_at       first time the pipeline raised it (UTC ISO)
    occurred_at     the event's own time (internal: detection latency), never sent
    last_attempt_at, sent_at, last_error (error class / HTTP status: no message content)
    alert_json      the alert as first raised: a pending alert is re-sent from here even if the source row
                    later disappears (a correction, a row moved to quarantine): once raised, never dropped

A channel is marked delivered only after its notifier returned without error, so a failed send is retried on
the next run and a delivered one is never sent again on that channel. The one gap is a crash between a
successful send and the ledger write: that alert goes out once more (at-least-once; the webhook receives the
same `alert_ref` as `Idempotency-Key` to drop it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from clinic_pipeline.alerts.model import SafetyAlert
from clinic_pipeline.lake import Lake

LEDGER = ("state", "alerts", "ledger.parquet")
PENDING, SENT = "pending", "sent"
COLUMNS = [
    "dedupe_key",
    "alert_ref",
    "kind",
    "priority",
    "clinic_id",
    "status",
    "channels_sent",
    "attempts",
    "raised_at",
    "occurred_at",
    "last_attempt_at",
    "sent_at",
    "last_error",
    "alert_json",
]


@dataclass
class AlertLedger:
    lake: Lake
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, lake: Lake) -> AlertLedger:
        path = lake.path(*LEDGER)
        if not path.exists():
            return cls(lake)
        frame = pd.read_parquet(str(path))
        rows = {}
        for record in frame.to_dict("records"):
            record["attempts"] = int(record.get("attempts") or 0)
            rows[record["dedupe_key"]] = {c: record.get(c) for c in COLUMNS}
        return cls(lake, rows)

    def save(self) -> None:
        frame = pd.DataFrame([self.rows[k] for k in sorted(self.rows)], columns=COLUMNS)
        frame = frame.astype({c: "string" for c in COLUMNS if c != "attempts"}).astype({"attempts": "int64"})
        self.lake.write_parquet(self.lake.path(*LEDGER), frame)

    # --- queries -------------------------------------------------------------------------------------------

    def get(self, dedupe_key: str) -> dict[str, Any] | None:
        return self.rows.get(dedupe_key)

    def is_sent(self, dedupe_key: str) -> bool:
        row = self.rows.get(dedupe_key)
        return row is not None and row["status"] == SENT

    def channels_sent(self, dedupe_key: str) -> set[str]:
        row = self.rows.get(dedupe_key)
        return {c for c in str((row or {}).get("channels_sent") or "").split(",") if c}

    def pending(self) -> list[SafetyAlert]:
        return [SafetyAlert.from_record(r["alert_json"]) for r in self.rows.values() if r["status"] == PENDING]

    def counts(self) -> dict[str, int]:
        out = {PENDING: 0, SENT: 0}
        for row in self.rows.values():
            out[row["status"]] = out.get(row["status"], 0) + 1
        return out

    # --- changes -------------------------------------------------------------------------------------------

    def record(self, alert: SafetyAlert) -> bool:
        """Record a raised alert as pending (True) unless known already (False: the first record stands)."""
        if alert.dedupe_key in self.rows:
            return False
        self.rows[alert.dedupe_key] = {
            "dedupe_key": alert.dedupe_key,
            "alert_ref": alert.alert_ref,
            "kind": alert.kind,
            "priority": alert.priority,
            "clinic_id": alert.clinic_id,
            "status": PENDING,
            "channels_sent": "",
            "attempts": 0,
            "raised_at": alert.raised_at,
            "occurred_at": alert.occurred_at,
            "last_attempt_at": None,
            "sent_at": None,
            "last_error": None,
            "alert_json": alert.to_record(),
        }
        return True

    def delivered(self, dedupe_key: str, channel: str, at: str, channels: list[str]) -> bool:
        """Mark one channel delivered; the alert is `sent` once every channel in `channels` has it."""
        row = self.rows[dedupe_key]
        done = self.channels_sent(dedupe_key) | {channel}
        row["channels_sent"] = ",".join(sorted(done))
        row["attempts"] = int(row["attempts"]) + 1
        row["last_attempt_at"] = at
        if set(channels) <= done:
            row["status"] = SENT
            row["sent_at"] = at
            row["last_error"] = None
        return row["status"] == SENT

    def failed(self, dedupe_key: str, channel: str, at: str, error: str) -> None:
        row = self.rows[dedupe_key]
        row["attempts"] = int(row["attempts"]) + 1
        row["last_attempt_at"] = at
        row["last_error"] = f"{channel}: {error}"[:300]
