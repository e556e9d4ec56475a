"""From a drill's raw records to verdicts: no I/O, and no record kept longer than it is needed.

Inputs: the load generator's records (one per product request), the phases as they really
ran (wall-clock start and end), and the fault proxy's request log for the drill. Per feature
and phase: requests, full / degraded / failed answers, p50 and p95 latency, error kinds,
the backends the product says answered, the routes the proxy saw answer and, for a feature
with an eval set, the quality of a sample of its full answers (`chaos.drill.sampling` picks
them as they arrive, `chaos.drill.judging` checks them after the load). Per feature, over the
phases with faults: a verdict (resilient / degraded / broken, by the drill's thresholds; a
feature whose checked answers pass below its ``min_pass`` is broken, however many requests it
answered: the outage a status code never shows), the reason where quality decided it, whether
it meets the expected outcome, and the time to recover once the faults ended (the first of
three full answers in a row).

A long drill under heavy load makes millions of records, so `Tally` takes them as they arrive
and keeps counts, not records: latencies up to `LATENCY_SAMPLE` per feature and phase (a
uniform sample beyond), `SECOND_SAMPLE` per second for the timeline, and for the recovery the
first `RECOVERY_KEPT` requests per feature after the faults, and to be checked at most
``quality.sample`` answers per feature and phase. Whatever was cut is said in
`DrillResult.notes`, which every output shows. `analyse` is the same over lists.
"""

from __future__ import annotations

import bisect
import math
import random
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from chaos.drill.judging import Judged, QualityStats, quality_stats
from chaos.drill.sampling import AnswerSample
from chaos.drill.spec import DrillSpec

VERDICTS = ("resilient", "degraded", "broken")
_ALLOWED = {"survives": {"resilient"}, "degrades": {"resilient", "degraded"}, "may_fail": set(VERDICTS)}
RECOVERED_AFTER = 3  # full answers in a row
LATENCY_SAMPLE = 10_000  # latencies kept per feature and phase (and during the faults)
SECOND_SAMPLE = 200  # per second and feature, for the timeline's p50
RECOVERY_KEPT = 100_000  # requests kept per feature after the faults, in start order, to find the recovery


@dataclass(slots=True)
class PhaseRun:
    name: str
    start: float  # wall clock: its faults in force from here (the proxy had taken them)
    end: float  # wall clock: their removal began here
    faults: list[dict[str, Any]] = field(default_factory=list)

    @property
    def faulted(self) -> bool:
        return bool(self.faults)


@dataclass(slots=True)
class Stats:
    requests: int = 0
    ok: int = 0
    degraded: int = 0
    failed: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    backends: dict[str, int] = field(default_factory=dict)  # as the product reported them
    routes: dict[str, int] = field(default_factory=dict)  # proxy routes that answered (2xx, unbroken)
    quality: QualityStats | None = None  # the checked sample of full answers (features with an eval set)

    @property
    def ok_rate(self) -> float | None:
        return self.ok / self.requests if self.requests else None

    @property
    def answered_rate(self) -> float | None:
        return (self.ok + self.degraded) / self.requests if self.requests else None


@dataclass(slots=True)
class FeatureResult:
    feature: str
    expected: str
    verdict: str | None  # None: no request during the faults
    meets: bool
    during_faults: Stats
    phases: dict[str, Stats]
    recovery_s: float | None  # None: never recovered (or no fault phase ended)
    answered_by: list[str]  # routes that answered during the faults
    reason: str | None = None  # where quality decided the verdict, or could not be judged: why


@dataclass(slots=True)
class DrillResult:
    name: str
    started_at: float
    ended_at: float
    phases: list[PhaseRun]
    features: list[FeatureResult]
    aborted: str | None = None  # why, when a guard stopped the drill
    timeline: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was sampled or cut to keep memory bounded

    @property
    def passed(self) -> bool:
        return self.aborted is None and all(f.meets for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        for feature, raw in zip(self.features, data["features"], strict=True):
            raw["during_faults"].update(ok_rate=feature.during_faults.ok_rate,
                                        answered_rate=feature.during_faults.answered_rate)
        return data


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


class Sample:
    """Values kept for percentiles: every one up to ``cap``, then a uniform sample of ``cap``
    (reservoir sampling), so percentiles stay exact while few and close while many."""

    __slots__ = ("_rng", "cap", "seen", "values")

    def __init__(self, cap: int, rng: random.Random) -> None:
        self.cap, self.seen, self.values, self._rng = cap, 0, array("d"), rng

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.cap:
            self.values.append(value)
        elif (j := self._rng.randrange(self.seen)) < self.cap:
            self.values[j] = value

    @property
    def sampled(self) -> bool:
        return self.seen > self.cap

    def pct(self, q: float) -> float | None:
        return pct(self.values, q)


class _Counts:
    """One feature in one phase (or over the faults): counts, error kinds, backends, routes, latencies."""

    __slots__ = ("backends", "degraded", "errors", "failed", "latencies", "ok", "requests", "routes")

    def __init__(self, rng: random.Random) -> None:
        self.requests = self.ok = self.degraded = self.failed = 0
        self.errors: Counter[str] = Counter()
        self.backends: Counter[str] = Counter()
        self.routes: Counter[str] = Counter()
        self.latencies = Sample(LATENCY_SAMPLE, rng)

    def record(self, r: dict[str, Any]) -> None:
        self.requests += 1
        self.latencies.add(r["ms"])
        if r["ok"]:
            self.ok += 1
        elif r["deg"]:
            self.degraded += 1
        else:
            self.failed += 1
            self.errors[r["k"] or "unknown"] += 1
        if r.get("b") and (r["ok"] or r["deg"]):
            self.backends[r["b"]] += 1

    def entry(self, e: dict[str, Any]) -> None:
        status = e.get("status")
        if isinstance(status, int) and 200 <= status < 300 and not e.get("broken"):
            self.routes[e.get("route")] += 1

    def stats(self) -> Stats:
        return Stats(self.requests, self.ok, self.degraded, self.failed, self.latencies.pct(50),
                     self.latencies.pct(95), dict(self.errors), dict(self.backends), dict(self.routes))


class _Recovery:
    """The first `RECOVERED_AFTER` full answers in a row, in start order, among one feature's
    requests started from ``since`` on, taken in any order (records arrive as requests end)."""

    __slots__ = ("cut", "ok", "since", "t")

    def __init__(self, since: float) -> None:
        self.since, self.t, self.ok, self.cut = since, array("d"), bytearray(), 0

    def add(self, t: float, ok: bool) -> None:
        if t < self.since:
            return
        i = bisect.bisect_right(self.t, t)
        if len(self.t) >= RECOVERY_KEPT:  # keep the earliest: the answer lies among them, if it is anywhere
            self.cut += 1
            if i >= len(self.t):
                return
            self.t.pop()
            self.ok.pop()
        self.t.insert(i, t)
        self.ok.insert(i, ok)

    def seconds(self) -> float | None:
        run = 0
        for i, ok in enumerate(self.ok):
            run = run + 1 if ok else 0
            if run == RECOVERED_AFTER:
                return round(max(0.0, self.t[i - RECOVERED_AFTER + 1] - self.since), 3)
        return None


class Tally:
    """A drill's figures, fed as it runs: `begin` and `end` each phase (once the proxy has its faults,
    and once their removal begins), `add_records` and `add_entries` as they arrive, `result` at the end.

    A record belongs to the phase it lay wholly inside: started in [start, end) and ended by the
    end (one under way when a phase's faults came or went met both states, so it speaks for
    neither). A record only arrives once its request has ended, so one that arrives while a
    phase runs and started after its start lies inside it. A proxy log entry belongs to the
    phase its ``at`` lies in: when the proxy decided its faults. Memory is bounded (see the module
    docstring)."""

    def __init__(self, spec: DrillSpec, *, started_at: float, ended_at: float | None = None,
                 seed: int | None = None) -> None:
        self.spec = spec
        self.started_at, self.ended_at = started_at, ended_at
        self.phases: list[PhaseRun] = []
        self._open: PhaseRun | None = None
        self._rng = random.Random(seed)
        self._phase: dict[tuple[str, str], _Counts] = {}
        self._during = {name: _Counts(self._rng) for name in spec.features}
        self._recovery: dict[str, _Recovery] | None = None  # from the end of the latest fault phase
        self._seconds: dict[tuple[int, str], list[Any]] = {}
        self._sample = AnswerSample({name: f.judging.sample for name, f in spec.features.items() if f.judging},
                                    {p.name: p.duration for p in spec.phases})
        self.notes: list[str] = []

    def begin(self, run: PhaseRun) -> None:
        self.phases.append(run)
        self._open = run
        for name in self.spec.features:
            self._phase[(name, run.name)] = _Counts(self._rng)

    def end(self, run: PhaseRun) -> None:
        if self._open is run:
            self._open = None
        if run.faulted:
            self._recovery = {name: _Recovery(run.end) for name in self.spec.features}

    def _phase_of(self, t: float, until: float) -> PhaseRun | None:
        for run in reversed(self.phases):
            if t >= run.start:
                if run is self._open:
                    return run
                return run if t < run.end and until <= run.end else None
        return None

    def add_records(self, records: Iterable[dict[str, Any]], *, in_phase: bool = True) -> None:
        """Count each record in the timeline and, with ``in_phase``, in its phase's figures (a
        request that met a lapsed fault is in the timeline only: `chaos.drill.leases`)."""
        for r in records:
            name = r["f"]
            if name not in self._during:
                continue
            t = r["t"]
            if t >= self.started_at and (self.ended_at is None or t < self.ended_at):
                bucket = self._seconds.get((int(t - self.started_at), name))
                if bucket is None:
                    bucket = self._seconds[(int(t - self.started_at), name)] = [0, 0, 0,
                                                                                 Sample(SECOND_SAMPLE, self._rng)]
                bucket[0] += 1
                bucket[1] += bool(r["ok"])
                bucket[2] += bool(r["deg"])
                bucket[3].add(r["ms"])
            run = self._phase_of(t, t + r["ms"] / 1000) if in_phase else None
            if run is not None:
                self._phase[(name, run.name)].record(r)
                if run.faulted:
                    self._during[name].record(r)
                if "a" in r and r["ok"]:
                    self._sample.offer(name, run.name, run.start, r)
            if self._recovery is not None:
                self._recovery[name].add(t, bool(r["ok"]))

    def add_entries(self, entries: Iterable[dict[str, Any]]) -> None:
        for e in entries:
            name = e.get("feature")
            if name not in self._during:
                continue
            at = e["at"]
            for run in reversed(self.phases):
                if at >= run.start:
                    if run is self._open or at < run.end:
                        self._phase[(name, run.name)].entry(e)
                        if run.faulted:
                            self._during[name].entry(e)
                    break

    def counts(self, phase: str) -> dict[str, tuple[int, int, int, int]]:
        """Per feature in ``phase`` so far: requests, full, degraded and failed answers (for a live view)."""
        out = {}
        for name in self.spec.features:
            c = self._phase.get((name, phase))
            out[name] = (c.requests, c.ok, c.degraded, c.failed) if c else (0, 0, 0, 0)
        return out

    def samples(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(feature, phase, record) of each answer kept to be checked (at most ``quality.sample`` per
        feature and phase, spread over the phase)."""
        return self._sample.items()

    def result(self, *, ended_at: float, aborted: str | None = None, judged: Iterable[Judged] = ()) -> DrillResult:
        """The verdicts; ``judged``: the `samples` as `chaos.drill.judging` checked them."""
        judged = list(judged)
        results = []
        for name, feature in self.spec.features.items():
            during = self._during[name].stats()
            phases = {p.name: self._phase[(name, p.name)].stats() for p in self.phases}
            judging = feature.judging
            if judging is not None:
                mine = [j for j in judged if j.feature == name]
                for p in self.phases:
                    phases[p.name].quality = quality_stats((j for j in mine if j.phase == p.name),
                                                           min_pass=judging.min_pass, faulted=p.faulted)
                faulted = {p.name for p in self.phases if p.faulted}
                during.quality = quality_stats((j for j in mine if j.phase in faulted), min_pass=judging.min_pass,
                                               faulted=True)
            v = verdict(during, self.spec)
            recovery = None
            if any(p.faulted for p in self.phases):
                if during.ok == during.requests:
                    recovery = 0.0
                elif self._recovery is not None:
                    recovery = self._recovery[name].seconds()
            meets = (v is not None and v in _ALLOWED[feature.outcome]) or (v is None and feature.outcome == "may_fail")
            results.append(FeatureResult(
                feature=name, expected=feature.outcome, verdict=v, meets=meets,
                during_faults=during, phases=phases, recovery_s=recovery,
                answered_by=sorted(during.routes, key=lambda r: -during.routes[r]), reason=quality_reason(during)))
        timeline = [{"s": s, "feature": f, "n": n, "ok": ok, "deg": deg, "p50_ms": sample.pct(50)}
                    for (s, f), (n, ok, deg, sample) in sorted(self._seconds.items())
                    if self.ended_at is not None or s < ended_at - self.started_at]
        checked = [f"{f.feature} {f.during_faults.quality.sampled} of {f.during_faults.ok:,}" for f in results
                   if f.during_faults.quality is not None and f.during_faults.ok]
        sampled = [f"answer quality from a sample of the full answers, spread over each phase (during the faults: "
                   f"{', '.join(checked)} checked)"] if checked else []
        return DrillResult(self.spec.name, self.started_at, ended_at, list(self.phases), results, aborted, timeline,
                           [*self.notes, *sampled, *self._cut_notes()])

    def _cut_notes(self) -> list[str]:
        notes = []
        sampled = [f"{name} in {phase} ({c.latencies.seen:,})" for (name, phase), c in self._phase.items()
                   if c.latencies.sampled]
        sampled += [f"{name} during the faults ({c.latencies.seen:,})" for name, c in self._during.items()
                    if c.latencies.sampled]
        if sampled:
            notes.append(f"latency percentiles from a uniform sample of {LATENCY_SAMPLE:,} requests where more "
                         f"arrived: {', '.join(sampled[:6])}{', ...' if len(sampled) > 6 else ''}")
        if any(sample.sampled for _, _, _, sample in self._seconds.values()):
            notes.append(f"the timeline's per-second p50 from a sample of {SECOND_SAMPLE} requests where more arrived")
        for name, rec in (self._recovery or {}).items():
            if rec.cut:
                notes.append(f"recovery of {name} judged on the first {RECOVERY_KEPT:,} requests after the faults "
                             f"({rec.cut:,} later ones not kept)")
        return notes


def verdict(stats: Stats, spec: DrillSpec) -> str | None:
    """resilient / degraded / broken (None: no request). Checked answers passing below ``min_pass``
    make it broken: answered, but not good enough."""
    if not stats.requests:
        return None
    if stats.quality is not None and stats.quality.below:
        return "broken"
    if stats.ok_rate >= spec.thresholds.resilient:
        return "resilient"
    if stats.answered_rate < spec.thresholds.broken:
        return "broken"
    return "degraded"


def quality_reason(stats: Stats) -> str | None:
    """Why quality decided the verdict (or could not): None where it did not, or was not asked."""
    if stats.quality is None or not stats.requests:
        return None
    return stats.quality.reason(answered_rate=stats.answered_rate, full=stats.ok)


def analyse(spec: DrillSpec, records: Iterable[dict[str, Any]], phases: list[PhaseRun],
            entries: Iterable[dict[str, Any]], *, started_at: float, ended_at: float,
            aborted: str | None = None, judge=None) -> DrillResult:
    """`Tally` over finished phases and whole lists (for tests and offline use). ``judge``: called with
    the sampled (feature, phase, record) list, returns their `Judged` (e.g. `chaos.drill.judging.judge_sample`
    with the eval sets)."""
    tally = Tally(spec, started_at=started_at, ended_at=ended_at, seed=0)
    for run in phases:
        tally.begin(run)
        tally.end(run)
    tally.add_records(records)
    tally.add_entries(entries)
    judged = judge(tally.samples()) if judge is not None else ()
    return tally.result(ended_at=ended_at, aborted=aborted, judged=judged)
