"""Event triggers, run with asyncio against the real file system and the local Redis server."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
import redis
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

from clinic_pipeline.triggers.landing_markers import LandingMarkerTrigger
from clinic_pipeline.triggers.redis_streams import RedisStreamEventTrigger, RedisStreamProducer

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _next(iterator, timeout: float = 5.0):
    return await asyncio.wait_for(anext(iterator), timeout)


def test_marker_trigger_fires_for_a_backlog_then_for_each_new_marker(tmp_path):
    ready = tmp_path / "_ready" / "monitor"
    ready.mkdir(parents=True)
    (ready / "monitor-C001-20260105.json").write_text("{}")

    async def scenario():
        events = LandingMarkerTrigger(directory=str(ready), poke_interval=0.05).run()
        backlog = await _next(events)
        (ready / "monitor-C001-20260106.json").write_text("{}")
        (ready / ".monitor-C001-20260107.json.partial").write_text("{")  # half-written: not a marker
        landed = await _next(events)
        with pytest.raises(TimeoutError):
            await _next(events, timeout=0.3)
        await events.aclose()
        return backlog.payload, landed.payload

    backlog, landed = asyncio.run(scenario())
    assert backlog["reason"] == "backlog" and backlog["markers"] == 1
    assert landed == {"directory": str(ready), "reason": "landed", "marker": "monitor-C001-20260106.json"}


def test_marker_trigger_serializes_for_the_triggerer():
    trigger = LandingMarkerTrigger(directory="/data/landing/_ready/epro", poke_interval=2)
    classpath, kwargs = trigger.serialize()
    assert classpath == "clinic_pipeline.triggers.landing_markers.LandingMarkerTrigger"
    assert LandingMarkerTrigger(**kwargs).directory == trigger.directory


@pytest.fixture
def stream(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CLINIC_EVENTS_REDIS", REDIS_URL)
    name = f"clinic-pipeline:test:{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield name, client
    client.delete(name)


def _announce(client, stream: str, source: str, batch_id: str) -> str:
    return client.xadd(stream, {"source": source, "batch_id": batch_id, "marker": f"_ready/{source}/{batch_id}.json"})


@pytest.mark.redis
def test_redis_producer_acks_only_after_persistence_and_rereads_pending_after_restart(stream):
    name, client = stream
    ids = [_announce(client, name, "monitor", f"monitor-C001-2026010{i}") for i in range(3)]

    async def first_poll():
        producer = RedisStreamProducer(redis_conn_id="clinic_events_redis", stream=name, group="g", block_ms=100)
        events = producer.open_stream()
        seen = [await _next(events) for _ in ids]
        clean, failed = AdvanceOutcome(acked=1, failed=0), AdvanceOutcome(acked=0, failed=1)
        await producer.advance(
            [AdvanceItem(seen[0][1], clean), AdvanceItem(seen[1][1], clean), AdvanceItem(seen[2][1], failed)]
        )
        await events.aclose()
        await producer.aclose()
        return [payload for _, payload in seen]

    assert asyncio.run(first_poll()) == ids
    assert client.xpending(name, "g")["pending"] == 1, "the event whose persistence failed stays pending"

    async def after_restart():
        producer = RedisStreamProducer(redis_conn_id="clinic_events_redis", stream=name, group="g", block_ms=100)
        events = producer.open_stream()
        raw, payload = await _next(events)
        await producer.advance([AdvanceItem(payload, AdvanceOutcome(acked=1, failed=0))])
        await events.aclose()
        await producer.aclose()
        return raw

    redelivered = asyncio.run(after_restart())
    assert redelivered["id"] == ids[2] and redelivered["fields"]["batch_id"] == "monitor-C001-20260102"
    assert client.xpending(name, "g")["pending"] == 0


@pytest.mark.redis
def test_redis_trigger_keeps_only_its_source(stream):
    name, client = stream
    _announce(client, name, "epro", "epro-C001-20260105")
    monitor_id = _announce(client, name, "monitor", "monitor-C001-20260105")
    trigger = RedisStreamEventTrigger(source="monitor", stream=name, group="g", block_ms=100)

    async def shared():
        async def raw_events():
            for entry_id, fields in client.xrange(name):
                yield {"stream": name, "id": entry_id, "fields": fields}

        return [e.payload async for e in trigger.filter_shared_stream(raw_events())]

    assert [e["batch_id"] for e in asyncio.run(shared())] == ["monitor-C001-20260105"]

    async def standalone():
        events = trigger.run()
        event = await _next(events)
        await events.aclose()
        return event.payload

    payload = asyncio.run(standalone())
    assert payload["stream_id"] == monitor_id and payload["source"] == "monitor"
    assert trigger.shared_stream_key() == ("redis-stream", "clinic_events_redis", name, "g")
    assert json.loads(json.dumps(trigger.serialize()[1]))["source"] == "monitor"
    assert os.environ["AIRFLOW_CONN_CLINIC_EVENTS_REDIS"] == REDIS_URL
