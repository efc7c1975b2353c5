"""File-landing event trigger: fires when a batch marker appears in `_ready/<source>/` of the landing zone.

Markers are never deleted (the ledger, not the landing zone, records what was processed). At start the
trigger fires once if markers are already there, so a backlog is picked up without waiting for the sweep.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent


def _marker_names(directory: str) -> set[str]:
    try:
        return {e.name for e in os.scandir(directory) if e.name.endswith(".json") and e.is_file()}
    except FileNotFoundError:
        return set()


class LandingMarkerTrigger(BaseEventTrigger):
    """Yield one event per new marker file in `directory` (and one at start when a backlog exists)."""

    def __init__(self, *, directory: str, poke_interval: float = 5.0) -> None:
        super().__init__()
        self.directory = directory
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"directory": self.directory, "poke_interval": self.poke_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        seen = await asyncio.to_thread(_marker_names, self.directory)
        if seen:
            yield TriggerEvent({"directory": self.directory, "reason": "backlog", "markers": len(seen)})
        while True:
            await asyncio.sleep(self.poke_interval)
            current = await asyncio.to_thread(_marker_names, self.directory)
            for name in sorted(current - seen):
                self.log.info("batch marker %s landed in %s", name, self.directory)
                yield TriggerEvent({"directory": self.directory, "reason": "landed", "marker": name})
            seen |= current
