"""The watch loop: one APScheduler job per target, confirmation probes after a failure.

Every target probes on its own interval, first run spread at random over one interval so
targets do not fire together. A failure asks the detector for quick confirmation probes
(by default 1, 1, 2 and 2 s apart) so an outage is confirmed in seconds; once the state settles the
normal interval resumes. A probe still without a first token after ``hedge_after`` has those
confirmations sent alongside it at once (as many as the detector says a DOWN would need), so a
hanging provider is confirmed in one first-token deadline rather than one per confirmation
(their evidence spans a deadline each, so they need no spacing against blips); while several
probes of a target are in flight, the latest result decides on the next confirmation once the
last of them ends. `Scheduler.nudge` probes a target at once when a sibling on the same
endpoint failed (the service decides when). A target's base runs never overlap
(``max_instances=1``), a missed run is run once, late, rather than in a burst (``coalesce``),
and every probe carries its own deadlines, so a hanging provider holds only its own slot.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
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

# However slow a target usually is, a probe still waiting at this share of its first-token
# deadline is hedged: the hedges still save most of a deadline per confirmation.
HEDGE_BEFORE_DEADLINE = 0.75

# Scheduling delays kept per target (for benches and tests: a percentile of recent delays).
# 1,000 a target grew 200 targets' memory by ~40 KiB a minute for ~3 hours, to 6 MiB; 100 was still
# filling 13 minutes into the soak (0.6 MiB); 20 (~130 KiB for 200 targets) fill in 200 s at a 10 s
# interval, and bench/monitor_load.py's 60 s at 10 s keeps every delay.
DELAYS_KEPT = 20

Handler = Callable[["Watch", ProbeResult, bool, bool], Awaitable[float | None]]
HedgeAfter = Callable[["Watch"], float | None]
Hedges = Callable[["Watch", datetime, bool], int]


@dataclass
class Watch:
    """One target under watch."""

    target: Target
    interval: float
    delays_ms: deque[float] = field(default_factory=lambda: deque(maxlen=DELAYS_KEPT))  # of recent runs
    inflight: int = 0  # probes of this target under way (hedges counted from the moment they are sent)
    ended: int = 0  # probes of this target ended so far: the order their results are handled in
    decided: int = 0  # the latest of them whose handling has said whether to confirm
    want_confirm: float | None = None  # what it said: seconds until a confirmation, or None


class Scheduler:
    """Runs `handle(watch, result, confirm, sibling)` after every probe (``sibling``: sent by
    `nudge`); it returns seconds until the next confirmation probe, or None.
    ``hedge_after(watch)``: seconds without a first token after which a probe of that target is
    hedged (None: never); ``hedges(watch, started, confirm)``: how many confirmations to send
    alongside such a probe."""

    def __init__(self, *, watches: list[Watch], client: httpx.AsyncClient, handle: Handler,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, seed: int | None = None,
                 hedge_after: HedgeAfter | None = None, hedges: Hedges | None = None) -> None:
        self.watches = {w.target.name: w for w in watches}
        self._client = client
        self._handle = handle
        self._slots = asyncio.Semaphore(max_concurrency)
        self._rng = random.Random(seed)
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._inflight: set[asyncio.Task] = set()
        self._hedge_after = hedge_after if hedges is not None else None
        self._hedges = hedges
        # Hedges take at most a quarter of the slots, so a provider hanging on many targets
        # cannot crowd the others' scheduled probes out (beyond that: one confirmation at a time).
        self._hedge_room = max(1, max_concurrency // 4)
        self._hedging = 0
        self._stopping = False

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
        """No new runs or hedges; let the probes in flight finish (each is bounded by its deadlines)."""
        self._stopping = True
        self._scheduler.pause()  # shutdown() would cancel the runs in flight (AsyncIOExecutor)
        loop = asyncio.get_running_loop()
        until = loop.time() + grace
        while self._inflight and (left := until - loop.time()) > 0:  # hedges sent meanwhile count too
            await asyncio.wait(set(self._inflight), timeout=left)
        for task in set(self._inflight):  # past the grace: nothing may outlive the watch
            task.cancel()
        if self._inflight:
            await asyncio.wait(set(self._inflight))
        self._scheduler.shutdown(wait=False)

    def nudge(self, name: str) -> bool:
        """Probes ``name`` now, off schedule (a sibling of it failed), unless a probe of it is under
        way or a confirmation of it is already coming; True when one was sent. Its handler is told
        ``sibling``; it is hedged like a scheduled probe (it opens the target's own confirmations)."""
        watch = self.watches[name]
        if self._stopping or watch.inflight or self._scheduler.get_job(f"{name}:confirm") is not None:
            return False
        self._spawn(watch, confirm=False, sibling=True)
        return True

    def _confirm_later(self, name: str, seconds: float) -> None:
        when = datetime.now(UTC) + timedelta(seconds=seconds)
        self._scheduler.add_job(self._run, DateTrigger(run_date=when, timezone=UTC), args=(name, True, when),
                                id=f"{name}:confirm", replace_existing=True, misfire_grace_time=30)

    async def _run(self, name: str, confirm: bool, first_due: datetime, counted: bool = False,
                   sibling: bool = False) -> None:
        task = asyncio.current_task()
        self._inflight.add(task)
        try:
            await self._run_one(name, confirm, first_due, counted, sibling)
        finally:
            self._inflight.discard(task)

    async def _run_one(self, name: str, confirm: bool, first_due: datetime, counted: bool, sibling: bool) -> None:
        watch = self.watches[name]
        due = self._due(name, confirm or sibling, first_due)
        watch.delays_ms.append((datetime.now(UTC) - due).total_seconds() * 1000)
        if not counted:
            watch.inflight += 1
        try:
            async with self._slots:
                result = await self._probe(watch, confirm)
            watch.ended += 1
            order = watch.ended
            try:
                confirm_in = await self._handle(watch, result, confirm, sibling)
            except Exception:  # a bug in handling one result must not stop the watch
                log.exception("handling a result of %s failed", name)
            else:
                if order > watch.decided:  # the latest result's word replaces the earlier ones'
                    watch.decided, watch.want_confirm = order, confirm_in
        finally:
            watch.inflight -= 1
            # While other probes of this target are under way, the last of them to end decides.
            if watch.inflight == 0 and watch.want_confirm is not None and not self._stopping:
                self._confirm_later(name, watch.want_confirm)
                watch.want_confirm = None

    async def _probe(self, watch: Watch, confirm: bool) -> ProbeResult:
        """One probe; past its ``hedge_after`` with no first token, its confirmations go at once.

        Not for a local model: one server working through one request at a time, where probes
        sent alongside a slow one queue behind it and only slow it further."""
        after = None if self._hedge_after is None or watch.target.local else self._hedge_after(watch)
        if after is None:
            return await probe(watch.target, client=self._client)
        after = min(after, HEDGE_BEFORE_DEADLINE * watch.target.deadlines.first_token)
        started = datetime.now(UTC)
        answered = asyncio.Event()
        task = asyncio.ensure_future(probe(watch.target, client=self._client, first_token=answered))
        try:
            done, _ = await asyncio.wait({task}, timeout=after)
            if not done and not answered.is_set() and not self._stopping:
                assert self._hedges is not None
                # The probes of this target already under way count as its confirmations too.
                wanted = self._hedges(watch, started, confirm) - (watch.inflight - 1)
                for _ in range(max(0, min(wanted, self._hedge_room - self._hedging))):
                    self._hedge(watch)
            return await task
        finally:
            if not task.done():  # the watch is stopping
                task.cancel()

    def _hedge(self, watch: Watch) -> None:
        self._hedging += 1
        self._spawn(watch, confirm=True, sibling=False).add_done_callback(lambda _: self._release_hedge())

    def _release_hedge(self) -> None:
        self._hedging -= 1

    def _spawn(self, watch: Watch, *, confirm: bool, sibling: bool) -> asyncio.Task:
        """A probe now, outside APScheduler (a hedge, a sibling probe), counted in flight at once: a
        second probe reaching hedge_after, or a second nudge, in this same tick must see it."""
        name = watch.target.name
        watch.inflight += 1
        task = asyncio.ensure_future(self._run(name, confirm, datetime.now(UTC), True, sibling))
        self._inflight.add(task)

        def done(task: asyncio.Task) -> None:
            self._inflight.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("an off-schedule probe of %s failed", name, exc_info=task.exception())

        task.add_done_callback(done)
        return task

    def _due(self, name: str, confirm: bool, first_due: datetime) -> datetime:
        """When this run was meant to start (APScheduler has already moved the job on)."""
        if confirm:
            return first_due
        job = self._scheduler.get_job(name)
        if job is None or job.next_run_time is None:
            return first_due
        due = job.next_run_time - timedelta(seconds=self.watches[name].interval)
        return max(due, first_due)
