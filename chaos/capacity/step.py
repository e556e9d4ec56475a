"""One step of the search: a feature's eval cases sent to a backend at one rate, and the verdict.

A step holds its rate for ``step_s`` seconds or ``min_requests`` requests, whichever is longer (fewer
would not judge a p95), sending the cases in turn (a step continues where the last one left off, so
every case is used) over `probes.generate`: the backend's own wire protocol, timed and classified as
the monitor does. After the load, the checks of a bounded, evenly spread sample of the answers are run
(never during it: a check may be slow or call a judge model, and the timings would pay for it), as many
answers of each case as can be (`balanced`), so the pass rate is the eval set's, not a stride's.

The step holds when

- p95 latency is within the feature's budget: ``latency_budget.total`` judged on total time, else
  ``first_token`` on time to first token, both from when each request was *due* (`chaos.capacity.load`).
  A request with no good answer (an error, abandoned, never sent) counts as over the budget: p95 holds
  while at most 5% of the requests are late (nearest rank); and
- the sample's pass rate is at least the criteria's ``min_pass_rate`` (when there is one, and something
  could be judged).

A step that is certainly lost (more requests already late than p95 allows) stops early: nothing more is
sent, and the requests in flight are abandoned, so an overloaded backend is not buried deeper before the
next step. In ``total`` mode a request is abandoned at twice the budget (`CUTOFF`): it is late either way.
A backend may still work through what we abandoned (many servers finish a request whose client left), so
after such a step `Meter.drain` waits, one lone request at a time, until it answers as fast as it did
alone: the backlog of one step is never charged to the next (without this, a stable server one request at
a time measured 1.0 rps against its 1.36).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from chaos.capacity.load import Arrival, OpenLoop
from chaos.capacity.search import Step
from probes import Generation, generate

if TYPE_CHECKING:
    import httpx

    from monitor.quality.cases import Case
    from probes import Conversation, Target

CUTOFF = 2.0  # x the total budget: a request still running then is abandoned (late either way)
WATCH_S = 0.1  # how often a running step looks for a lost cause
LAG_MS = 50.0  # a step whose requests went out later than this (p95) says so
DRAIN_MAX = 10  # lone requests sent at most, after a step that abandoned some, to see the backend idle again
STEP_S = 20.0
MIN_REQUESTS = 30
SAMPLE = 30


@dataclass(frozen=True, slots=True)
class Criteria:
    """What a step must do to hold."""

    budget_ms: float
    on: Literal["total", "first_token"] = "total"
    """Which time the budget is judged on."""
    min_pass_rate: float | None = None
    """None: latency only."""
    quality_from: str = ""
    """Where ``min_pass_rate`` came from, or why there is none: one line for the report."""

    def describe(self) -> str:
        time_of = "total time" if self.on == "total" else "time to first token"
        quality = (f"pass rate at least {self.min_pass_rate:.0%}" if self.min_pass_rate is not None
                   else "pass rate not judged")
        said = f"p95 {time_of} within {self.budget_ms:.0f} ms; {quality}"
        return f"{said} ({self.quality_from})" if self.quality_from else said


def allowed_late(n: int) -> int:
    """Requests of ``n`` that may be late with the p95 (nearest rank) still within the budget."""
    return n - (95 * n + 99) // 100


def nearest_rank(values: Sequence[float], q: int = 95) -> float | None:
    xs = sorted(values)
    return xs[max(0, (q * len(xs) + 99) // 100 - 1)] if xs else None


def latency_ms(arrival: Arrival[Generation], on: str) -> float | None:
    """An answered request's latency from when it was due: total, or to its first token (the time before the
    request reached the wire, ``probes`` leaves out of its own figure, is added back)."""
    wall = arrival.latency_s
    if wall is None:
        return None
    wall_ms = wall * 1000
    result = arrival.value.result if arrival.value is not None else None
    if on == "first_token" and result is not None and result.ttft_ms is not None and result.total_ms is not None:
        return result.ttft_ms + max(0.0, wall_ms - result.total_ms)
    return wall_ms


def unanswered(arrival: Arrival[Generation]) -> str | None:
    """Why a request got no good answer (its error kind, ``cut``, ``shed``, ``stopped``, ``defect``), or None."""
    if arrival.shed:
        return "shed"
    if arrival.cut:
        return "cut"
    if arrival.stopped:
        return "stopped"
    if arrival.error is not None:
        return "defect"
    if arrival.value is None:
        return "unsent" if arrival.sent is None else None
    return None if arrival.value.ok else str(arrival.value.result.error_kind)


def judge(rate: float, arrivals: Sequence[Arrival[Generation]], criteria: Criteria, *, verdicts: Sequence[bool | None],
          seconds: float = 0.0, planned: int | None = None, stopped_early: bool = False) -> Step:
    """The `Step` of a finished run (pure): latency from the arrivals, quality from the sample's verdicts."""
    budget = criteria.budget_ms
    n = len(arrivals)
    kinds = Counter(k for a in arrivals if (k := unanswered(a)) is not None)
    served = [ms for a in arrivals if unanswered(a) is None and (ms := latency_ms(a, criteria.on)) is not None]
    cut_ms = budget * CUTOFF
    # An abandoned request is late when it had already run past the budget (in total mode: its first token
    # may have come in time otherwise); every other unanswered one is late by definition.
    overdue = [ms for a in arrivals if a.stopped and criteria.on == "total" and a.ended is not None
               and (ms := (a.ended - a.due) * 1000) > budget]
    late = sum(1 for ms in served if ms > budget) + sum(c for k, c in kinds.items() if k != "stopped") + len(overdue)
    # The abandoned count at the time they had run when abandoned: a floor, so p95 never looks better than it was.
    p95 = nearest_rank(served + [cut_ms] * kinds.get("cut", 0) + overdue)
    judged = [v for v in verdicts if v is not None]
    pass_rate = sum(judged) / len(judged) if judged else None
    problems = []
    if stopped_early:
        planned = max(planned or n, n)
        problems.append(f"lost early: {late} of {planned} requests over the {budget:.0f} ms budget (p95 allows "
                        f"{allowed_late(planned)}); {kinds.get('stopped', 0)} abandoned in flight, "
                        f"{planned - n} not sent")
    elif n == 0:
        problems.append("no request was sent")
    elif late > allowed_late(n):
        p95_said = "none answered" if p95 is None else f"p95 {'over ' if kinds.get('cut') else ''}{p95:.0f} ms"
        problems.append(f"{p95_said}, over the {budget:.0f} ms budget: {late} of {n} late")
    if criteria.min_pass_rate is not None and pass_rate is not None and pass_rate < criteria.min_pass_rate:
        problems.append(f"pass rate {pass_rate:.0%} under {criteria.min_pass_rate:.0%} "
                        f"({sum(judged)} of {len(judged)} checked answers passed)")
    errors = sum(kinds.values())
    lag = nearest_rank([a.lag_s * 1000 for a in arrivals if a.lag_s is not None])
    if problems:
        why = "; ".join(problems)
    else:
        quality = f"pass rate {pass_rate:.0%} of {len(judged)} checked" if pass_rate is not None else "quality unjudged"
        why = f"p95 {p95:.0f} ms within {budget:.0f} ms ({late} of {n} late); {quality}"
    if errors and not stopped_early:
        why += f"; unanswered: {', '.join(f'{k} {c}' for k, c in kinds.most_common())}"
    if lag is not None and lag > LAG_MS:
        why += f"; our generator sent late (p95 {lag:.0f} ms behind schedule): a busy machine, partly our figure"
    return Step(rate=rate, ok=not problems, requests=n, errors=errors, p95_ms=p95, pass_rate=pass_rate,
                checked=len(verdicts), late=late, seconds=seconds, why=why, error_kinds=dict(kinds), lag_ms=lag)


def balanced(answered: Sequence[Arrival[Any]], case_of: Callable[[Arrival[Any]], int], k: int) -> list[Arrival[Any]]:
    """At most ``k`` answers to check, as many of each case as can be (the counts differ by one at most),
    each case's spread over the step; with more cases than ``k``, ``k`` cases spread over the set, the same
    ones every step. So the sample's pass rate is one of the whole eval set (or of the same subset at every
    rate), never of whichever cases a stride happened to land on."""
    groups: dict[int, list[Arrival[Any]]] = {}
    for arrival in answered:
        groups.setdefault(case_of(arrival), []).append(arrival)
    cases = spread(sorted(groups), k) if k > 0 else []
    quota = dict.fromkeys(cases, 0)
    left = k
    while left > 0:
        took = False
        for case in cases:
            if left > 0 and quota[case] < len(groups[case]):
                quota[case] += 1
                left -= 1
                took = True
        if not took:
            break
    return sorted((a for case in cases for a in spread(groups[case], quota[case])), key=lambda a: a.index)


def spread(items: Sequence[Any], k: int) -> list[Any]:
    """At most ``k`` of ``items``, evenly spread from first to last (all of them when there are no more)."""
    n = len(items)
    if n <= k:
        return list(items)
    return [items[(j * n) // k] for j in range(k)]


class Meter:
    """Measures steps of one feature's cases against one backend: ``await meter.measure(rate) -> Step``."""

    def __init__(self, *, feature: str, target: Target, cases: Sequence[Case], conversations: Sequence[Conversation],
                 criteria: Criteria, client: httpx.AsyncClient, judge: Any = None, step_s: float = STEP_S,
                 min_requests: int = MIN_REQUESTS, sample: int = SAMPLE, settle_s: float = 0.5) -> None:
        if not cases or len(cases) != len(conversations):
            raise ValueError("a meter needs cases, each with its conversation")
        self.feature, self.target, self.criteria, self.client, self.judge = feature, target, criteria, client, judge
        self.cases, self.conversations = list(cases), list(conversations)
        self.step_s, self.min_requests, self.sample, self.settle_s = step_s, min_requests, sample, settle_s
        self._next = 0
        self._spare = 0  # cases of the requests outside the steps (warm-up, drain) in turn
        self._alone_ms: float | None = None

    def requests_at(self, rate: float) -> int:
        return max(self.min_requests, math.ceil(self.step_s * rate - 1e-9))

    async def measure(self, rate: float) -> Step:
        count = self.requests_at(rate)
        offset, self._next = self._next, self._next + count
        began = time.perf_counter()
        cutoff = self.criteria.budget_ms * CUTOFF / 1000 if self.criteria.on == "total" else None

        def send(i: int):
            return generate(self.target, self.conversations[(offset + i) % len(self.cases)], client=self.client)

        run: OpenLoop[Generation] = OpenLoop(send, rate=rate, count=count, cutoff_s=cutoff)
        watcher = asyncio.create_task(self._watch(run, count))
        try:
            arrivals = await run.run()
        finally:
            watcher.cancel()
        answered = [a for a in arrivals if unanswered(a) is None]

        def case_of(arrival: Arrival[Any]) -> int:
            return (offset + arrival.index) % len(self.cases)

        verdicts = [await self._check(a.value, self.cases[case_of(a)])
                    for a in balanced(answered, case_of, self.sample)]
        step = judge(rate, arrivals, self.criteria, verdicts=verdicts, seconds=time.perf_counter() - began,
                     planned=count, stopped_early=run.stopped)
        if self.settle_s:
            await asyncio.sleep(self.settle_s)  # the backend's own queue and connections wind down
        if step.error_kinds.get("cut") or step.error_kinds.get("stopped"):
            await self.drain()
        return step

    async def drain(self) -> int:
        """Waits until the backend answers a lone request about as fast as it did alone (or within the budget):
        a request we abandoned may still be queued or running on the backend (many servers finish a request
        whose client left), and that backlog must not be charged to the next step. One request at a time,
        at most `DRAIN_MAX`; how many it took."""
        limit = max(self.criteria.budget_ms, 1.5 * self._alone_ms if self._alone_ms else 0.0)
        for tries in range(1, DRAIN_MAX + 1):
            ms = await self._alone()
            if ms is not None and ms <= limit:
                return tries
        return DRAIN_MAX

    async def warm_up(self, n: int = 2) -> int:
        """``n`` requests one after another, not counted (a cold model's first answers are not its traffic's);
        how many were answered. The last one answered is how fast the backend answers alone (`drain`)."""
        answered = 0
        for _ in range(n):
            ms = await self._alone()
            if ms is not None:
                answered += 1
                self._alone_ms = ms
        return answered

    async def _alone(self) -> float | None:
        """One request, not counted, on its own: its latency (as the budget is judged), None if unanswered."""
        conversation = self.conversations[self._spare % len(self.cases)]
        self._spare += 1
        began = time.perf_counter()
        generation = await generate(self.target, conversation, client=self.client)
        if not generation.ok:
            return None
        result = generation.result
        if self.criteria.on == "first_token" and result.ttft_ms is not None:
            return result.ttft_ms
        return (time.perf_counter() - began) * 1000

    async def _check(self, generation: Generation, case: Case) -> bool | None:
        from monitor.quality.runner import answer_row

        row = await answer_row(self.feature, self.target, case, generation, run_id=0, judge=self.judge)
        return row.passed

    async def _watch(self, run: OpenLoop[Generation], planned: int) -> None:
        loop = asyncio.get_running_loop()
        budget_s = self.criteria.budget_ms / 1000
        limit = allowed_late(planned)
        while True:
            await asyncio.sleep(WATCH_S)
            now = loop.time()
            late = 0
            for arrival in run.arrivals:
                if arrival.pending:
                    # Still running past the budget: certainly late in total mode; in first-token mode its
                    # first token may have come in time, so only the finished ones are counted.
                    late += self.criteria.on == "total" and now - arrival.due > budget_s
                elif unanswered(arrival) is not None:
                    late += 1
                else:
                    ms = latency_ms(arrival, self.criteria.on)
                    late += ms is not None and ms > self.criteria.budget_ms
            if late > limit:
                run.stop()
                return
