"""What alerts and what does not, on the network's marts edited to show each case; the ledger's guarantees."""

from __future__ import annotations

import pandas as pd

from clinic_pipeline.alerts import model
from clinic_pipeline.alerts.delivery import send_alerts
from clinic_pipeline.alerts.evaluate import SEVERE_BP_RULES, evaluate_alerts
from clinic_pipeline.alerts.ledger import AlertLedger
from clinic_pipeline.lake import Lake
from clinic_pipeline.safety.marts import build_marts
from tests.alerts.conftest import copy_lake


class MemoryNotifier:
    """A channel that keeps what it is given (the real SMTP/webhook channels are tested in test_delivery)."""

    def __init__(self, channel: str = "memory:test", fail: bool = False) -> None:
        self.channel, self.fail, self.sent = channel, fail, []

    def notify(self, context):
        if self.fail:
            raise ConnectionError("down")
        self.sent.append(context["safety_alert"])


def edit_mart(lake: Lake, name: str, edit) -> None:
    path = str(lake.path("marts", f"{name}.parquet"))
    edit(pd.read_parquet(path)).to_parquet(path, index=False)


def test_unanswered_suicidality_alerts_at_review_priority_unless_disabled(lake):
    def make_unknown(flags):
        first = flags.index[flags["rule"] == "phq9_item9"][0]
        flags.loc[first, ["flag_kind", "value"]] = ["unknown", ""]
        flags["treatment_emergent"] = flags["treatment_emergent"].astype("boolean")
        flags.loc[first, "treatment_emergent"] = pd.NA
        return flags

    edit_mart(lake, "suicidality_flags", make_unknown)
    alerts = evaluate_alerts(lake)
    unknown = [a for a in alerts if a.kind == model.SUICIDALITY_UNKNOWN]
    assert len(unknown) == 1
    assert unknown[0].priority == model.REVIEW and "answer missing" in unknown[0].event
    assert "not 'no risk'" in unknown[0].text() and alerts[-1] is unknown[0], "lowest priority, listed last"
    assert not [a for a in evaluate_alerts(lake, include_unknown=False) if a.kind == model.SUICIDALITY_UNKNOWN]


def test_seriousness_criteria_alone_alert_and_unassessed_detected_events_do_not(lake):
    events = pd.read_parquet(str(lake.path("marts", "adverse_events.parquet")))
    target = events.loc[(events["origin"] == "staff_recorded") & ~events["serious"].fillna(True), "ae_key"].iloc[0]

    def add_criterion(frame):
        frame.loc[frame["ae_key"] == target, "seriousness_criteria"] = "hospitalization"
        return frame

    edit_mart(lake, "adverse_events", add_criterion)
    keys = {a.dedupe_key for a in evaluate_alerts(lake) if a.kind == model.SERIOUS_AE}
    assert f"serious_ae:{target}" in keys
    detected = events.loc[events["origin"] != "staff_recorded", "ae_key"]
    assert len(detected) > 0 and not keys & {f"serious_ae:{k}" for k in detected}


def test_breach_rules_are_configurable(alerts_build, lake):
    truth = alerts_build.network.truth["threshold_breaches"]
    wider = evaluate_alerts(lake, breach_rules=(*SEVERE_BP_RULES, "spo2_low"))
    spo2 = [a for a in wider if a.term_or_rule == "spo2_low"]
    assert len(spo2) == sum(b["rule"] == "spo2_low" for b in truth) > 0
    assert not [a for a in evaluate_alerts(lake) if a.term_or_rule == "spo2_low"]


def test_recorded_alerts_keep_their_reference_and_a_vanished_source_is_still_sent(lake):
    first = evaluate_alerts(lake)
    report = send_alerts(lake, first, [])  # no channel: recorded as pending, nothing dropped
    assert report.pending == len(first) and report.new == len(first) and report.sent == 0
    assert {a.alert_ref for a in evaluate_alerts(lake)} == {a.alert_ref for a in first}

    gone = next(a for a in first if a.kind == model.SERIOUS_AE)
    edit_mart(lake, "adverse_events", lambda f: f.loc["serious_ae:" + f["ae_key"] != gone.dedupe_key])
    assert gone.dedupe_key not in {a.dedupe_key for a in evaluate_alerts(lake)}
    channel = MemoryNotifier()
    report = send_alerts(lake, evaluate_alerts(lake), [channel])
    assert report.sent == len(first) and report.pending == 0
    assert gone.alert_ref in {a.alert_ref for a in channel.sent}, "raised once, never dropped"
    assert len(channel.sent) == len({a.alert_ref for a in channel.sent}) == len(first)


def test_a_new_channel_gets_pending_alerts_only(lake):
    alerts = evaluate_alerts(lake)
    failing = MemoryNotifier("memory:b", fail=True)
    send_alerts(lake, alerts[:5], [MemoryNotifier("memory:a")])  # sent: every channel of that run had them
    first_a = MemoryNotifier("memory:a")
    report = send_alerts(lake, alerts, [first_a, failing])
    rest = len(alerts) - 5
    assert len(first_a.sent) == rest and report.sent == 0
    assert report.failed == {"memory:b": rest} and report.errors[0].endswith("ConnectionError")
    assert len(report.errors) == 3, "tried 3 times in a row, then left alone for this run"
    later = MemoryNotifier("memory:a")
    report = send_alerts(lake, [], [later])
    assert later.sent == [] and report.pending == rest, "channel a has them all; b is still owed"
    fixed = MemoryNotifier("memory:b")
    report = send_alerts(lake, [], [MemoryNotifier("memory:a"), fixed])
    assert len(fixed.sent) == rest and report.sent == rest and report.pending == 0


def test_rebuilt_marts_raise_nothing_new(alerts_build, tmp_path):
    lake = copy_lake(alerts_build.lake_root, tmp_path / "full", all_staged=True)
    channel = MemoryNotifier()
    first = send_alerts(lake, evaluate_alerts(lake), [channel])
    assert first.sent == len(channel.sent) > 80
    build_marts(lake)  # a rerun of the safety DAG over the same staged data (or a re-delivered batch)
    assert evaluate_alerts(lake) == []
    assert send_alerts(lake, evaluate_alerts(lake), [channel]).sent == 0
    ledger = AlertLedger.load(lake)
    assert ledger.counts() == {"pending": 0, "sent": len(channel.sent)}


def test_an_empty_lake_raises_nothing(tmp_path):
    lake = Lake(tmp_path / "empty")
    assert evaluate_alerts(lake) == []
    report = send_alerts(lake, [], [MemoryNotifier()])
    assert report.ok and (report.raised, report.sent, report.pending) == (0, 0, 0)
