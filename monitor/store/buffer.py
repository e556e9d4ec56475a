"""`ResultWriter`: the monitor loop's buffered, loss-free path to the database.

The probing loop must never wait on the database, and an outage of the database (PostgreSQL
restarting, SQLite locked by a long transaction) must not lose measurements: those are exactly
the minutes someone will ask about. So:

- `ResultWriter.submit` appends to memory and returns; it never blocks and never raises;
- a background task writes batches (every ``flush_interval`` s, or as soon as ``batch_size``
  rows wait) with a sync session in a worker thread (``executor``: the monitor gives its one
  database thread, see `monitor.service`; else `asyncio.to_thread`), one transaction per batch;
- a failed batch stays queued, retried with capped, jittered exponential backoff;
- beyond ``max_memory`` queued rows, rows go to a JSONL spill file under ``$AIRISK_HOME/spill``
  and are replayed once the queue has drained; the files of a writer that closed or crashed
  while the database was away are replayed by the next writer to start (`monitor.store.spill`);
- `ResultWriter.close` keeps trying for ``grace`` seconds, then spills what is left.

Within a process each result is written once. Two rare cases may write a batch twice: a crash
between a replayed batch's commit and its progress mark, and a connection lost after the server
committed but before it said so. A row the database refuses as invalid (not a connection
problem) is set aside in ``rejected-*.rejected`` so it cannot block the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.store.db import DEFAULT_HOME
from monitor.store.results import write_results
from monitor.store.spill import Item, SpillFiles, encode
from probes.result import ProbeResult

log = logging.getLogger("airisk.store")
# "This data is wrong", not "the database is away": retrying cannot help.
_PERMANENT = (sa.exc.IntegrityError, sa.exc.DataError, ValueError, TypeError, KeyError, AttributeError)
_T = TypeVar("_T")


class ResultWriter:
    """Buffered writer of `ProbeResult`s measured from ``region``; ``async with`` or `start`/`close`."""

    def __init__(
        self,
        engine: Engine,
        *,
        region: str = "",
        spill_dir: Path | None = None,
        flush_interval: float = 0.5,
        batch_size: int = 200,
        max_memory: int = 200_000,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        executor: Executor | None = None,
    ) -> None:
        self.engine = engine
        self.executor = executor  # where the database work runs; None: asyncio.to_thread
        self.region = region
        home = Path(os.environ.get("AIRISK_HOME") or DEFAULT_HOME).expanduser()
        self.spill = SpillFiles(Path(spill_dir) if spill_dir is not None else home / "spill")
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_memory = max_memory
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.written = 0  # rows committed
        self.spilled = 0  # rows sent to disk
        self.failures = 0  # consecutive failed attempts
        self.last_error: str | None = None
        self._pending: deque[tuple[ProbeResult, bool]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._deadline = 0.0

    @property
    def pending(self) -> int:
        """Rows held in memory, not yet committed."""
        return len(self._pending)

    async def __aenter__(self) -> ResultWriter:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Starts the background task (from inside the event loop; `submit` does it too)."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="airisk-result-writer")

    def submit(self, result: ProbeResult, *, confirm: bool = False) -> None:
        """Queues one result (``confirm``: a confirmation probe). Never blocks, never raises."""
        try:
            if self._closing or len(self._pending) >= self.max_memory:
                # After close() the file is closed at once: the next writer replays it.
                self.spill.append(encode(result, confirm=confirm, region=self.region), keep_open=not self._closed)
                self.spilled += 1
                return
            self._pending.append((result, confirm))
            if self._task is None:
                with contextlib.suppress(RuntimeError):  # no running loop yet: started later
                    self.start()
            if self._wake is not None and len(self._pending) >= self.batch_size:
                self._wake.set()
        except Exception:  # a full disk, a bad object: log it, the probing loop must go on
            log.exception("result writer: could not queue a result for %s", getattr(result, "target", "?"))

    async def close(self, grace: float = 10.0) -> None:
        """Writes what it can within ``grace`` seconds; what is left goes to a spill file."""
        if self._task is None and self._pending:
            self.start()
        self._closing = True
        self._deadline = asyncio.get_running_loop().time() + grace
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            await self._task  # each attempt is bounded by the connect / busy timeouts
        if self._pending:
            log.warning("result writer: database unavailable at close; %d rows kept in %s",
                        len(self._pending), self.spill.directory)
            try:
                self.spill.append("".join(encode(r, confirm=c, region=self.region) for r, c in self._pending))
                self.spilled += len(self._pending)
            except Exception:
                log.exception("result writer: %d rows could not be spilled and are lost", len(self._pending))
            self._pending.clear()
        self.spill.release()
        self._closed = True

    # -- background -------------------------------------------------------------------------

    async def _in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self.executor is None:
            return await asyncio.to_thread(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args))

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            await self._in_thread(self.spill.claim_orphans)
        while not (self._closing and (not self._pending or loop.time() >= self._deadline)):
            try:
                if self._pending:
                    ok = await self._flush_head()
                elif self.spill.has_work and not self._closing:
                    ok = await self._replay_some()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                    self._wake.clear()
                    continue
            except Exception as exc:  # a bug must not stop the writer: keep the rows, retry
                log.exception("result writer: unexpected error")
                self._failed(exc)
                ok = False
            if not ok:
                await self._backoff()

    async def _backoff(self) -> None:
        delay = min(self.backoff_max, self.backoff_initial * 2 ** min(self.failures, 30))
        delay *= random.uniform(0.5, 1.0)  # jitter: monitors sharing a database do not retry in step
        if self._closing:
            await asyncio.sleep(min(delay, max(0.0, self._deadline - asyncio.get_running_loop().time())))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._until_closing(), delay)

    async def _until_closing(self) -> None:
        assert self._wake is not None
        while not self._closing:
            self._wake.clear()
            await self._wake.wait()

    async def _flush_head(self) -> bool:
        """Writes the oldest batch; True on success (or when bad rows were set aside)."""
        batch = [(r, c, self.region) for r, c in itertools.islice(self._pending, self.batch_size)]
        try:
            await self._in_thread(self._write, batch)
        except _PERMANENT as exc:
            log.error("result writer: batch refused (%s); writing its rows one by one", exc)
            return await self._isolate(len(batch))
        except Exception as exc:
            self._failed(exc)
            return False
        for _ in batch:
            self._pending.popleft()
        self._succeeded(len(batch))
        return True

    async def _isolate(self, n: int) -> bool:
        for _ in range(n):
            result, confirm = self._pending[0]
            try:
                await self._in_thread(self._write, [(result, confirm, self.region)])
            except _PERMANENT as exc:
                await self._in_thread(self.spill.reject, (result, confirm, self.region), exc)
            except Exception as exc:
                self._failed(exc)
                return False
            else:
                self._succeeded(1)
            self._pending.popleft()
        return True

    async def _replay_some(self) -> bool:
        self.spill.rotate()  # rows spilled from now on go to a new file
        path = self.spill.to_replay[0]
        try:
            items, offset, at_end = await self._in_thread(self.spill.read, path, self.batch_size)
            if items:
                await self._in_thread(self._write_or_reject, items)
        except Exception as exc:
            self._failed(exc)
            return False
        self.spill.advance(path, offset, at_end)
        self._succeeded(len(items))
        return True

    def _write(self, batch: list[Item]) -> None:
        by_region: dict[str, list[tuple[ProbeResult, bool]]] = {}
        for result, confirm, region in batch:
            by_region.setdefault(region, []).append((result, confirm))
        with Session(self.engine) as session:
            for region, rows in by_region.items():
                write_results(session=session, results=rows, region=region)
            session.commit()

    def _write_or_reject(self, items: list[Item]) -> None:
        try:
            self._write(items)
        except _PERMANENT:
            for item in items:  # one by one, setting aside the rows the database refuses
                try:
                    self._write([item])
                except _PERMANENT as exc:
                    self.spill.reject(item, exc)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        # The first failure and every 10th, not a line per retry.
        if self.failures == 1 or self.failures % 10 == 0:
            log.warning("result writer: write failed %d time(s), %d rows waiting: %s",
                        self.failures, len(self._pending), self.last_error)

    def _succeeded(self, n: int) -> None:
        if self.failures:
            log.info("result writer: database back after %d failed attempt(s)", self.failures)
        self.failures = 0
        self.written += n
