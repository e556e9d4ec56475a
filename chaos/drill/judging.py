"""Checks a drill's sampled answers against their cases, and sums up what was found.

Run by the drill runner in its own process once the load has stopped, never in the load generator:
a check may be slow or call a judge model (possibly the very local model the product falls back
to), and doing that while Locust measures would load the system under test and skew its timings.
The sample is bounded (`chaos.drill.sampling`), so this takes seconds, not a second drill.

An answer passes when no check failed and at least one passed; it fails when a check failed (the
first failing check's reason is kept as the example); it is unjudged when no check could judge it
(a ``judge`` check with no judge backend: drills have none, so those are reported unjudged, never
failed). The same rule as `monitor.quality.figures.QualityFigure`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.drill.responses import dig
from chaos.drill.spec import EvalSet
from monitor.quality.cases import Case
from monitor.quality.checks import Check, Context, Verdict

CONCURRENCY = 8  # answers checked at once (a judge backend, when there is one, sees at most this many calls)
CHECK_TIMEOUT = 60.0  # seconds a check may take (a judge call); past it, unjudged
REASON_KEPT = 240  # characters of a failing example's reason


@dataclass(frozen=True, slots=True)
class Judged:
    """One sampled answer, checked."""

    feature: str
    phase: str
    case: str
    backend: str | None  # as the product reported it
    passed: bool | None  # None: unjudged
    reason: str  # the first failing check's ("case: check: reason"), or why it is unjudged


@dataclass(frozen=True, slots=True)
class QualityStats:
    """The checked sample of one feature in one phase (or over the faults)."""

    sampled: int
    passed: int
    failed: int
    unjudged: int
    pass_rate: float | None  # passed / (passed + failed); None: nothing judged
    min_pass: float
    faulted: bool  # from a phase with faults (the figure the verdict and the risk model read)
    failing: str | None = None  # a failing example's reason
    unjudged_reason: str | None = None
    by_backend: dict[str, list[int]] = field(default_factory=dict)  # backend -> [judged, passed]

    @property
    def judged(self) -> int:
        return self.passed + self.failed

    @property
    def below(self) -> bool:
        """Judged, and short of ``min_pass``."""
        return self.pass_rate is not None and self.pass_rate < self.min_pass

    def reason(self, *, answered_rate: float | None, full: int) -> str | None:
        """Why this decided a verdict (below ``min_pass``), or could not (nothing judged though ``full``
        answers came); None otherwise. ``answered_rate``: the feature's share of requests answered."""
        if self.below:
            return (f"answered {_pct(answered_rate)} of requests, but {self.passed} of {self.judged} checked answers "
                    f"passed ({_pct(self.pass_rate)}, below min_pass {_pct(self.min_pass)}); e.g. {self.failing}")
        if self.pass_rate is None and full:
            if self.sampled:
                return (f"quality not judged: none of {self.sampled} sampled answers could be judged "
                        f"({self.unjudged_reason})")
            return "quality not judged: no full answer was sampled during the faults"
        return None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def quality_stats(judged: Iterable[Judged], *, min_pass: float, faulted: bool) -> QualityStats:
    passed = failed = unjudged = 0
    failing = unjudged_reason = None
    by_backend: dict[str, list[int]] = {}
    for j in judged:
        if j.passed is None:
            unjudged += 1
            unjudged_reason = unjudged_reason or j.reason
            continue
        passed += j.passed
        failed += not j.passed
        if not j.passed and failing is None:
            failing = j.reason
        counts = by_backend.setdefault(j.backend or "?", [0, 0])
        counts[0] += 1
        counts[1] += j.passed
    n = passed + failed
    return QualityStats(passed + failed + unjudged, passed, failed, unjudged, passed / n if n else None, min_pass,
                        faulted, failing, unjudged_reason, by_backend)


def answer_text(data: Any, field_name: str) -> str:
    """The answer a case's checks read: the product's ``http.answer`` field (a list of labels joined
    with commas, anything else but text as JSON)."""
    value = dig(data, field_name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(map(str, value))
    return json.dumps(value)


async def _verdict(check: Check, answer: str, ctx: Context, seconds: float) -> Verdict:
    try:
        async with asyncio.timeout(seconds):
            return await check.evaluate(answer, ctx)
    except TimeoutError:
        return Verdict.unjudged(f"{check.name}: no verdict within {seconds:g}s")
    except Exception as exc:  # a check must never raise; if one does, its answer is not judged by it
        return Verdict.unjudged(f"{check.name}: could not run ({type(exc).__name__})")


async def judge_one(feature: str, phase: str, record: Mapping[str, Any], case: Case, *, judge: Any = None,
                    check_timeout: float = CHECK_TIMEOUT) -> Judged:
    """``record`` (a load generator record with ``a``, the product's JSON answer) against ``case``'s checks."""
    data = record.get("a")
    assert case.http is not None
    answer = answer_text(data, case.http.answer)
    ctx = Context(case=case, reference=case.reference, judge=judge, extra=data if isinstance(data, dict) else {})
    verdicts = [(check, await _verdict(check, answer, ctx, check_timeout)) for check in case.checks]
    backend = record.get("b") if isinstance(record.get("b"), str) else None
    for check, v in verdicts:
        if v.passed is False:
            return Judged(feature, phase, case.id, backend, False, f"{case.id}: {check.name}: {v.reason}"[:REASON_KEPT])
    if any(v.passed for _, v in verdicts):
        return Judged(feature, phase, case.id, backend, True, "")
    why = "; ".join(v.reason for _, v in verdicts)
    return Judged(feature, phase, case.id, backend, None, f"{case.id}: {why}"[:REASON_KEPT])


async def judge_answers(items: Iterable[tuple[str, str, Mapping[str, Any]]], eval_sets: Mapping[str, EvalSet], *,
                        judge: Any = None, concurrency: int = CONCURRENCY,
                        check_timeout: float = CHECK_TIMEOUT) -> list[Judged]:
    """Every (feature, phase, record) sampled, checked against its case (``c``: the index in the feature's
    eval set), at most ``concurrency`` answers at once. A record naming no known case is skipped."""
    gate = asyncio.Semaphore(concurrency)

    async def one(feature: str, phase: str, record: Mapping[str, Any]) -> Judged | None:
        cases = eval_sets[feature].cases if feature in eval_sets else ()
        index = record.get("c")
        if not isinstance(index, int) or not 0 <= index < len(cases):
            return None
        async with gate:
            return await judge_one(feature, phase, record, cases[index], judge=judge, check_timeout=check_timeout)

    done = await asyncio.gather(*(one(f, p, r) for f, p, r in items))
    return [j for j in done if j is not None]


def judge_sample(items: Iterable[tuple[str, str, Mapping[str, Any]]], eval_sets: Mapping[str, EvalSet], *,
                 judge: Any = None) -> list[Judged]:
    """`judge_answers` from synchronous code (the drill runner)."""
    items = list(items)
    if not items:
        return []
    return asyncio.run(judge_answers(items, eval_sets, judge=judge))
