"""Send alerts through the notifiers and keep the ledger: `send_alerts(lake, alerts, notifiers)`.

One notification per alert and channel (not a digest): each serious event is its own message with its own
priority in the subject, a receiver acknowledges it by its reference, and a failure affects that alert only.

1. Every alert passed in is recorded in the ledger as `pending` (written before anything is sent: an alert
   is never lost, even with no channel configured or a crash mid-run).
2. Every pending alert of the ledger (the ones passed in and any left from earlier runs) goes to each
   notifier that has not confirmed it yet, most urgent first. A confirmation is written to the ledger
   (rewritten every 0.25 s while sending, and at the end, also after an error); when every notifier of
   this run has confirmed an alert, it is `sent` and never sent again.
3. A failed channel leaves the alert pending (retried next run, on that channel only) and is reported.
   After 3 alerts in a row fail on one channel it is not tried again in this run (a server that is down
   would otherwise cost every alert its full retry backoff); those alerts count as failed and stay pending.

Crash window: a process killed between a confirmed send and the next ledger write (at most 0.25 s of
sends) sends those alerts again on the next run. Receivers can drop the repeat by its reference (webhook:
the `Idempotency-Key` header; email: `X-Clinic-Alert-Ref`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from clinic_pipeline.alerts.ledger import AlertLedger
from clinic_pipeline.alerts.model import PRIORITY_RANK, SafetyAlert
from clinic_pipeline.lake import Lake

log = logging.getLogger("clinic_pipeline.alerts")

GIVE_UP_AFTER = 3  # consecutive failed alerts on one channel before it is left alone for the rest of the run
SAVE_EVERY_S = 0.25  # ledger rewrite interval while sending (and always at the end)


class Notifier(Protocol):
    channel: str

    def notify(self, context: dict[str, Any]) -> None: ...


@dataclass
class AlertReport:
    raised: int = 0  # alerts passed in
    new: int = 0  # first recorded by this call
    sent: int = 0  # fully delivered by this call
    pending: int = 0  # still pending in the ledger afterwards
    already_sent: int = 0  # passed in but delivered before (skipped)
    channels: list[str] = field(default_factory=list)
    delivered: dict[str, int] = field(default_factory=dict)  # per channel, by this call
    failed: dict[str, int] = field(default_factory=dict)  # per channel, by this call
    by_kind: dict[str, int] = field(default_factory=dict)  # notifications sent per alert kind
    errors: list[str] = field(default_factory=list)  # first few, without message content

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def send_alerts(lake: Lake, alerts: Sequence[SafetyAlert], notifiers: Sequence[Notifier]) -> AlertReport:
    """Record, send and mark alerts (see module doc); returns what happened. Never raises for a channel."""
    ledger = AlertLedger.load(lake)
    report = AlertReport(raised=len(alerts), channels=[n.channel for n in notifiers])
    if len(set(report.channels)) != len(report.channels):
        raise ValueError(f"two notifiers share a channel name: {report.channels}")
    for alert in alerts:
        if ledger.is_sent(alert.dedupe_key):
            report.already_sent += 1
        elif ledger.record(alert):
            report.new += 1
    ledger.save()

    queue = sorted(ledger.pending(), key=lambda a: (PRIORITY_RANK.get(a.priority, 9), a.raised_at, a.dedupe_key))
    if not notifiers:
        report.pending = len(queue)
        if queue:
            log.warning(
                "safety alerts: NO notification channel configured: %d alert(s) recorded as pending in "
                "the lake (state/alerts/ledger.parquet), to be sent once a channel is configured",
                len(queue),
            )
        return report

    kinds: Counter[str] = Counter()
    streak = dict.fromkeys(report.channels, 0)  # consecutive failures per channel in this run
    saved = time.monotonic()
    try:
        for alert in queue:
            done = ledger.channels_sent(alert.dedupe_key)
            for notifier in notifiers:
                channel = notifier.channel
                if channel in done:
                    continue
                at = _now()
                if streak[channel] >= GIVE_UP_AFTER:  # the channel is down: keep the rest pending, move on
                    report.failed[channel] = report.failed.get(channel, 0) + 1
                    continue
                try:
                    notifier.notify({"safety_alert": alert, "ts": at})
                except Exception as error:
                    reason = str(error) if type(error).__name__ == "AlertDeliveryError" else type(error).__name__
                    ledger.failed(alert.dedupe_key, channel, at, reason)
                    report.failed[channel] = report.failed.get(channel, 0) + 1
                    streak[channel] += 1
                    if len(report.errors) < 10:
                        report.errors.append(f"{alert.alert_ref}: {reason}")
                    log.error("safety alert %s not delivered on %s: %s", alert.alert_ref, channel, reason)
                    if streak[channel] == GIVE_UP_AFTER:
                        log.error(
                            "%s failed %d alerts in a row: not tried again in this run (the rest stay pending)",
                            channel,
                            GIVE_UP_AFTER,
                        )
                else:
                    streak[channel] = 0
                    report.delivered[channel] = report.delivered.get(channel, 0) + 1
                    kinds[alert.kind] += 1
                    if ledger.delivered(alert.dedupe_key, channel, at, report.channels):
                        report.sent += 1
                    log.info(
                        "safety alert %s (%s, %s, clinic %s) delivered on %s",
                        alert.alert_ref,
                        alert.priority,
                        alert.kind,
                        alert.clinic_id,
                        channel,
                    )
            if time.monotonic() - saved >= SAVE_EVERY_S:
                ledger.save()
                saved = time.monotonic()
    finally:
        ledger.save()  # also when a notifier raised something unexpected: confirmed deliveries are kept
        for notifier in notifiers:
            close = getattr(notifier, "close", None)
            if close is not None:
                close()
    report.by_kind = dict(kinds)
    report.pending = ledger.counts()["pending"]
    return report
