"""Redis Streams event trigger in Airflow 3.3's shared-stream ack mode.

One consumer group reads the stream `clinic-pipeline:batches`; every DAG's watcher subscribes to the shared
poll and keeps only its source's entries. An entry is XACKed only after the asset events derived from it are
persisted in the metadata database (the producer's `advance`). After a triggerer restart the group's pending
list is read again first, so nothing announced while the triggerer was down or mid-flight is lost.
Delivery is at-least-once: the DAGs are idempotent (ledger), so a repeat wake-up changes nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer


def redis_url_from_connection(conn_id: str) -> str:
    """The Redis URL of an Airflow connection (secrets stay in connections, never in DAG code)."""
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).get_uri()


class RedisStreamProducer(SharedStreamProducer):
    def __init__(
        self, *, redis_conn_id: str, stream: str, group: str, count: int = 100, block_ms: int = 2000, **_: Any
    ) -> None:
        self.redis_conn_id, self.stream, self.group = redis_conn_id, stream, group
        self.count, self.block_ms = count, block_ms
        self.consumer = f"triggerer-{socket.gethostname()}-{os.getpid()}"
        self._redis: Any = None

    async def _client(self) -> Any:
        import redis.asyncio as aioredis

        url = await asyncio.to_thread(redis_url_from_connection, self.redis_conn_id)
        return aioredis.Redis.from_url(url, decode_responses=True)

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        import redis.exceptions

        self._redis = await self._client()
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        pending_from: str | None = "0"  # first re-read what this group delivered but never acked
        while True:
            if pending_from is not None:
                reply = await self._redis.xreadgroup(
                    self.group, self.consumer, {self.stream: pending_from}, count=self.count
                )
                entries = reply[0][1] if reply else []
                if not entries:
                    pending_from = None
                    continue
                pending_from = entries[-1][0]
            else:
                reply = await self._redis.xreadgroup(
                    self.group, self.consumer, {self.stream: ">"}, count=self.count, block=self.block_ms
                )
                entries = reply[0][1] if reply else []
            for entry_id, fields in entries:
                yield {"stream": self.stream, "id": entry_id, "fields": fields}, entry_id

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Ack what every subscriber handled or refused; a failed persist stays pending for redelivery."""
        done = [item.broker_payload for item in batch if item.outcome.is_clean or item.outcome.rejected]
        if done:
            await self._redis.xack(self.stream, self.group, *done)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


class RedisStreamEventTrigger(BaseEventTrigger):
    """Fires for each stream entry whose `source` field is this trigger's source."""

    def __init__(
        self,
        *,
        source: str,
        redis_conn_id: str = "clinic_events_redis",
        stream: str = "clinic-pipeline:batches",
        group: str = "clinic-pipeline",
        block_ms: int = 2000,
    ) -> None:
        super().__init__()
        self.source, self.redis_conn_id, self.stream, self.group = source, redis_conn_id, stream, group
        self.block_ms = block_ms

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "source": self.source,
                "redis_conn_id": self.redis_conn_id,
                "stream": self.stream,
                "group": self.group,
                "block_ms": self.block_ms,
            },
        )

    def shared_stream_key(self) -> tuple[str, ...]:
        return ("redis-stream", self.redis_conn_id, self.stream, self.group)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        return RedisStreamProducer(**kwargs)

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for raw in shared_stream:
            if raw["fields"].get("source") == self.source:
                yield TriggerEvent({"stream_id": raw["id"], **raw["fields"]})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Without the shared-stream manager (tests, older triggerers): read and ack one by one.

        A group of its own per source: in this mode triggers do not share one poll, and a shared group would
        hand another source's entries to this trigger, which would ack them away."""
        producer = RedisStreamProducer(
            redis_conn_id=self.redis_conn_id,
            stream=self.stream,
            group=f"{self.group}-{self.source}",
            block_ms=self.block_ms,
        )
        try:
            async for raw, entry_id in producer.open_stream():
                if raw["fields"].get("source") == self.source:
                    yield TriggerEvent({"stream_id": raw["id"], **raw["fields"]})
                await producer._redis.xack(self.stream, self.group, entry_id)
        finally:
            await producer.aclose()
