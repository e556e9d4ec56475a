"""The capacity search: the highest request rate a backend holds, over a ``measure(rate) -> Step`` callable.

Pure: no clock, no I/O. The logic is a generator (`plan`) that yields the next rate to try and is sent
the `Step` measured there; `search` (a plain callable) and `search_async` (a coroutine) drive it, so one
piece of logic serves the CLI's asyncio measurement and the tests' synthetic measures alike.

The search assumes that a backend holding a rate holds every lower one (queueing only grows with load).
A noisy measure can break that; the search then reports what it saw, and every step is kept.

1. Grow: from ``start``, multiply the rate by ``growth`` until a step fails, or ``max_rate`` (tried exactly,
   never exceeded) holds: the capacity is then "at least max_rate".
2. If the very first step fails, shrink instead: divide by ``growth`` until a step holds, or ``min_rate``
   (tried exactly, never gone below) fails too: the capacity is then 0.
3. Bisect between the last good and the first bad rate, at their geometric mean (rates are compared by
   ratio), until the bad one is within ``resolution`` of the good one (10%: bad <= good x 1.1). The last
   good rate is the capacity: the true threshold lies between it and 10% above it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

GROWTH = 2.0
RESOLUTION = 0.10


@dataclass(frozen=True, slots=True)
class Step:
    """One rate held for a while, and whether the backend held it."""

    rate: float
    """Requests a second offered (open loop: sent on schedule whether or not earlier ones answered)."""
    ok: bool
    """p95 within the latency budget and the pass rate held."""
    requests: int = 0
    """Requests sent at this rate."""
    errors: int = 0
    """Requests that got no good answer (an error of some kind, abandoned, or never sent): never served."""
    p95_ms: float | None = None
    """p95 latency (total, or first token: as the budget is) of the requests answered, from when each was due."""
    pass_rate: float | None = None
    """Of the answers checked (a bounded sample), the share whose checks passed; None: none judged."""
    checked: int = 0
    """Answers whose checks were run."""
    late: int = 0
    """Requests over the latency budget, errors included (p95 holds while at most 5% are)."""
    seconds: float = 0.0
    """How long the step took, draining included."""
    why: str = ""
    """One line: what held, or what failed and by how much."""
    error_kinds: dict[str, int] = field(default_factory=dict)
    lag_ms: float | None = None
    """p95 of how late our own generator sent the requests: near 0, or the figure is partly ours."""

    def as_dict(self) -> dict[str, Any]:
        """The stored form (`monitor.quality.figures.CapacityFigure.steps`)."""
        return {"rate": round(self.rate, 4), "p95_ms": _round(self.p95_ms), "pass_rate": _round(self.pass_rate, 4),
                "ok": self.ok, "requests": self.requests, "errors": self.errors, "checked": self.checked,
                "late": self.late, "seconds": round(self.seconds, 2), "why": self.why,
                "error_kinds": dict(self.error_kinds), "lag_ms": _round(self.lag_ms)}


@dataclass(frozen=True, slots=True)
class Capacity:
    """What the search found."""

    rate: float
    """The highest rate that held; 0 when none did (down to ``min_rate``)."""
    best: Step | None
    """The step measured at ``rate`` (None when none held)."""
    steps: tuple[Step, ...]
    """Every step, in the order tried."""
    why: str
    """How the search ended, in words."""
    capped: bool = False
    """``rate`` is ``max_rate``: the backend may hold more; the search was not allowed to look."""


def plan(*, max_rate: float, start: float = 1.0, min_rate: float = 0.1, growth: float = GROWTH,
         resolution: float = RESOLUTION) -> Generator[float, Step, Capacity]:
    """The search as a generator: yields each rate to try, is sent its `Step`, returns the `Capacity`.

    ``start`` is clamped into [``min_rate``, ``max_rate``]. `ValueError` for settings that cannot search."""
    _validate(max_rate=max_rate, start=start, min_rate=min_rate, growth=growth, resolution=resolution)
    steps: list[Step] = []
    good: Step | None = None  # the step at the highest rate that held so far
    good_rate = bad_rate = 0.0  # the highest rate that held; the lowest that failed (0: none yet)

    def seen(rate: float, step: Step) -> Step:
        if not isinstance(step, Step):
            raise TypeError(f"measure({rate:g}) must give a Step, got {type(step).__name__}")
        steps.append(step)
        return step

    rate = min(max(start, min_rate), max_rate)
    first = seen(rate, (yield rate))
    if first.ok:
        good, good_rate = first, rate
        while rate < max_rate:
            rate = min(rate * growth, max_rate)
            step = seen(rate, (yield rate))
            if not step.ok:
                bad_rate = rate
                break
            good, good_rate = step, rate
        if not bad_rate:
            return Capacity(rate=rate, best=good, steps=tuple(steps), capped=True,
                            why=f"held every rate up to the maximum, {_rps(max_rate)}: the backend may hold more")
    else:
        bad_rate = rate
        while rate > min_rate:
            rate = max(rate / growth, min_rate)
            step = seen(rate, (yield rate))
            if step.ok:
                good, good_rate = step, rate
                break
            bad_rate = rate
        if good is None:
            return Capacity(rate=0.0, best=None, steps=tuple(steps),
                            why=f"failed at every rate down to the minimum, {_rps(min_rate)}")
    while bad_rate > good_rate * (1 + resolution):
        rate = math.sqrt(good_rate * bad_rate)
        step = seen(rate, (yield rate))
        if step.ok:
            good, good_rate = step, rate
        else:
            bad_rate = rate
    return Capacity(rate=good_rate, best=good, steps=tuple(steps),
                    why=f"held {_rps(good_rate)}, failed {_rps(bad_rate)} (within {resolution:.0%})")


def search(measure: Callable[[float], Step], **settings: Any) -> Capacity:
    """Runs `plan` with ``measure`` (called once per rate tried, in order); ``settings`` go to `plan`."""
    gen = plan(**settings)
    rate = next(gen)
    while True:
        try:
            rate = gen.send(measure(rate))
        except StopIteration as done:
            return done.value


async def search_async(measure: Callable[[float], Awaitable[Step]], **settings: Any) -> Capacity:
    """`search` with a coroutine ``measure``."""
    gen = plan(**settings)
    rate = next(gen)
    while True:
        step = await measure(rate)
        try:
            rate = gen.send(step)
        except StopIteration as done:
            return done.value


def _validate(*, max_rate: float, start: float, min_rate: float, growth: float, resolution: float) -> None:
    for name, value in (("max_rate", max_rate), ("start", start), ("min_rate", min_rate), ("growth", growth),
                        ("resolution", resolution)):
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name}: must be a finite number above 0, got {value!r}")
    if min_rate > max_rate:
        raise ValueError(f"min_rate ({min_rate:g}) is above max_rate ({max_rate:g})")
    if growth <= 1:
        raise ValueError(f"growth: must be above 1, got {growth:g}")


def _rps(rate: float) -> str:
    return f"{rate:.3g} rps"


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
