"""Keep the fault proxy's request log in the monitor's database (``airisk proxy --store``).

Entries are batched and written off the event loop once a second, so a slow database
never delays a proxied request; while the database is away they wait in memory (up to a
bound, then the oldest are dropped and counted) and are written when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from monitor.store.proxylog import write_proxy_requests

log = logging.getLogger(__name__)


class LogStore:
    def __init__(self, engine: Engine, *, source: str = "", max_pending: int = 100_000) -> None:
        self._engine = engine
        self._source = source
        self._pending: deque[dict[str, Any]] = deque(maxlen=max_pending)
        self.written = 0
        self.dropped = 0

    def sink(self, entry: dict[str, Any]) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(dict(entry))

    def _write(self, batch: list[dict[str, Any]]) -> int:
        with Session(self._engine) as session:
            count = write_proxy_requests(session=session, entries=batch, source=self._source)
            session.commit()
        return count

    async def flush(self) -> None:
        batch = list(self._pending)
        if not batch:
            return
        try:
            self.written += await asyncio.to_thread(self._write, batch)
        except SQLAlchemyError as exc:
            log.warning("proxy log: database unavailable, %d entries held (%s)", len(batch), str(exc).splitlines()[0])
            return
        for _ in batch:  # only what was written; newer entries stay
            self._pending.popleft()

    async def run(self, stop: asyncio.Event, every: float = 1.0) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            await self.flush()
