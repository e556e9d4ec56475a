"""The watch loop: one APScheduler job per target, confirmation probes after a failure.

Every target probes on its own interval, first run spread at random over one interval so
targets do not fire together. A failure asks the detector for quick confirmation probes
(e.g. 2 s and 5 s later) so an outage is confirmed in seconds; once the state settles the
normal interval resumes. A target's runs never overlap (``max_instances=1``), a missed
run is run once, late, rather than in a burst (``coalesce``), and every probe carries its
own deadlines, so a hanging provider holds only its own slot.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from probes import Target, probe
from probes.result import ProbeResult

log = logging.getLogger("airisk.monitor")

# Why a cap: every probe in flight shares one event loop; past a few dozen at once the loop
# itself lags, and a timing monitor whose loop lags measures itself. (Arrival stamps come
# from the kernel, but request starts and deadlines still ride on the loop.)
DEFAULT_MAX_CONCURRENCY = 64

Handler = Callable[["Watch", ProbeResult, bool], Awaitable[float | None]]


@dataclass
class Watch:
    """One target under watch."""

    target: Target
    interval: float
    delays_ms: list[float] = field(default_factory=list)  # scheduling delay of recent runs
    confirming: bool = False


class Scheduler:
    """Runs `handle(watch, result, confirm)` after every probe; it returns seconds until the
    next confirmation probe, or None."""

    def __init__(self, *, watches: list[Watch], client: httpx.AsyncClient, handle: Handler,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, seed: int | None = None) -> None:
        self.watches = {w.target.name: w for w in watches}
        self._client = client
        self._handle = handle
        self._slots = asyncio.Semaphore(max_concurrency)
        self._rng = random.Random(seed)
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._inflight: set[asyncio.Task] = set()

    def start(self) -> None:
        now = datetime.now(UTC)
        for name, watch in self.watches.items():
            first = now + timedelta(seconds=self._rng.uniform(0, watch.interval))
            self._scheduler.add_job(
                self._run, IntervalTrigger(seconds=watch.interval, start_date=first, timezone=UTC),
                args=(name, False, first), id=name, name=name, max_instances=1, coalesce=True,
                misfire_grace_time=max(1, int(watch.interval)), next_run_time=first,
            )
        self._scheduler.start()

    async def stop(self, grace: float = 30.0) -> None:
        """No new runs; let the probes in flight finish (each is bounded by its deadlines)."""
        self._scheduler.pause()  # shutdown() would cancel the runs in flight (AsyncIOExecutor)
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace)
        self._scheduler.shutdown(wait=False)

    def _confirm_later(self, name: str, seconds: float) -> None:
        when = datetime.now(UTC) + timedelta(seconds=seconds)
        self._scheduler.add_job(self._run, DateTrigger(run_date=when, timezone=UTC), args=(name, True, when),
                                id=f"{name}:confirm", replace_existing=True, misfire_grace_time=30)

    async def _run(self, name: str, confirm: bool, first_due: datetime) -> None:
        task = asyncio.current_task()
        self._inflight.add(task)
        try:
            await self._run_one(name, confirm, first_due)
        finally:
            self._inflight.discard(task)

    async def _run_one(self, name: str, confirm: bool, first_due: datetime) -> None:
        watch = self.watches[name]
        due = self._due(name, confirm, first_due)
        watch.delays_ms.append((datetime.now(UTC) - due).total_seconds() * 1000)
        del watch.delays_ms[:-1000]
        async with self._slots:
            result = await probe(watch.target, client=self._client)
        try:
            confirm_in = await self._handle(watch, result, confirm)
        except Exception:  # a bug in handling one result must not stop the watch
            log.exception("handling a result of %s failed", name)
            return
        if confirm_in is not None:
            self._confirm_later(name, confirm_in)

    def _due(self, name: str, confirm: bool, first_due: datetime) -> datetime:
        """When this run was meant to start (APScheduler has already moved the job on)."""
        if confirm:
            return first_due
        job = self._scheduler.get_job(name)
        if job is None or job.next_run_time is None:
            return first_due
        due = job.next_run_time - timedelta(seconds=self.watches[name].interval)
        return max(due, first_due)
