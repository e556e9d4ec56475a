"""Open-loop arrivals: requests sent at a fixed rate whether or not the earlier ones have answered.

Why open loop: a closed loop (N users, each waiting for its answer before it sends again) slows its own
sending as soon as the backend slows, so a saturated backend never meets the queue real traffic would
build, and its latency looks better than users would find it ("coordinated omission"). Real users arrive
on their own schedule. Here request ``i`` is due at ``start + i / rate``; it is sent then (or at once, if
the event loop was late), and its latency is taken from when it was *due*, so being late to send it is
charged too rather than hidden.

Why asyncio and not Locust, which drives the drills' load (`chaos.drill.loadgen`): each request here is a
`probes.generate` call, the backend's own wire protocol with the monitor's timing and classification, and
that is asyncio code (httpx's async client, deadlines moved from phase to phase, arrival-stamped reads).
Locust patches the standard library with gevent at import, so it cannot share a process with it: every
request would cross a thread or process bridge that adds its own latency to the figure, or the dialects
would have to be written again for Locust's HTTP client. Locust's users are also a closed loop (each waits
for its answer, `constant_throughput` only paces one user), which is the very thing to avoid here. And the
rates an owned model holds are a few requests a second, which one asyncio process offers with room to
spare: `Arrival.lag_s` records how late each request was sent, so a generator that fell behind would show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_IN_FLIGHT = 1024
"""Requests waiting at once before further arrivals are shed (counted, not sent): a bound on our own memory
and sockets when a backend stops answering altogether."""


@dataclass(slots=True)
class Arrival(Generic[T]):
    """One request of the schedule: when it was due, sent, done, and what came of it."""

    index: int
    due: float
    """Event-loop time (s) it was due at."""
    sent: float | None = None
    done: float | None = None
    value: T | None = None
    """What ``send`` returned (None until it did, or if it never did)."""
    cut: bool = False
    """Abandoned: not done ``cutoff_s`` after it was due."""
    stopped: bool = False
    """Abandoned in flight because the run was stopped."""
    shed: bool = False
    """Never sent: `MAX_IN_FLIGHT` (or the run's bound) requests were already waiting."""
    ended: float | None = None
    """Event-loop time it was abandoned at (cut or stopped)."""
    error: str | None = None
    """``send`` raised (a defect: `probes.generate` never does): the exception, in one line."""

    @property
    def latency_s(self) -> float | None:
        """Due to done: the latency a user arriving on schedule saw."""
        return None if self.done is None else self.done - self.due

    @property
    def lag_s(self) -> float | None:
        """Due to sent: how late the generator itself was."""
        return None if self.sent is None else self.sent - self.due

    @property
    def pending(self) -> bool:
        return self.sent is not None and self.done is None and not (self.cut or self.stopped)


class OpenLoop(Generic[T]):
    """``count`` calls of ``send(i)``, the i-th due ``i / rate`` seconds after `run` starts.

    A call not done ``cutoff_s`` after it was due is cancelled and marked `Arrival.cut` (None: never).
    `stop` ends the run early: nothing more is sent and the calls in flight are cancelled (`Arrival.stopped`).
    ``arrivals`` grows as requests come due, so a watcher may read it while `run` runs."""

    def __init__(self, send: Callable[[int], Awaitable[T]], *, rate: float, count: int, cutoff_s: float | None = None,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        if not rate > 0 or count < 0 or max_in_flight < 1 or (cutoff_s is not None and not cutoff_s > 0):
            raise ValueError(f"open loop: need rate > 0, count >= 0, max_in_flight >= 1, cutoff_s > 0; got "
                             f"rate={rate!r}, count={count!r}, max_in_flight={max_in_flight!r}, cutoff_s={cutoff_s!r}")
        self.send = send
        self.rate = rate
        self.count = count
        self.cutoff_s = cutoff_s
        self.max_in_flight = max_in_flight
        self.arrivals: list[Arrival[T]] = []
        self._tasks: dict[asyncio.Task[None], Arrival[T]] = {}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> list[Arrival[T]]:
        """Sends the schedule, waits for every call to end (or be cut), and returns the arrivals in order."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            for index in range(self.count):
                due = start + index / self.rate
                # Due times come from the start and the index, never from the previous send, so a late
                # wake-up is caught up at once rather than shifting every later request.
                if due > loop.time() and await self._stopped_within(due - loop.time()):
                    break
                if self._stop.is_set():
                    break
                arrival: Arrival[T] = Arrival(index=index, due=due)
                self.arrivals.append(arrival)
                if len(self._tasks) >= self.max_in_flight:
                    arrival.shed = True
                    continue
                arrival.sent = loop.time()
                task = asyncio.create_task(self._one(arrival))
                self._tasks[task] = arrival
                task.add_done_callback(self._tasks.pop)
            while self._tasks and not self._stop.is_set():
                waiter = asyncio.create_task(self._stop.wait())
                await asyncio.wait([waiter, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            await self._cancel_in_flight()
        return self.arrivals

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _one(self, arrival: Arrival[T]) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.cutoff_s is None:
                arrival.value = await self.send(arrival.index)
            else:
                async with asyncio.timeout_at(arrival.due + self.cutoff_s):
                    arrival.value = await self.send(arrival.index)
            arrival.done = loop.time()
        except TimeoutError:
            arrival.cut, arrival.ended = True, loop.time()
        except Exception as exc:  # a defect in `send` is this request's failure, not the run's
            arrival.done = loop.time()
            arrival.error = f"{type(exc).__name__}: {str(exc)[:200]}"

    async def _cancel_in_flight(self) -> None:
        tasks = dict(self._tasks)
        now = asyncio.get_running_loop().time()
        for task, arrival in tasks.items():
            arrival.stopped, arrival.ended = True, now
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
