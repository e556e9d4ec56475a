"""From a drill's raw records to verdicts: pure functions, no I/O.

Inputs: the load generator's records (one per product request), the phases as they really
ran (wall-clock start and end), and the fault proxy's request log for the drill. Per feature
and phase: requests, full / degraded / failed answers, p50 and p95 latency, error kinds,
the backends the product says answered and the routes the proxy saw answer. Per feature,
over the phases with faults: a verdict (resilient / degraded / broken, by the drill's
thresholds), whether it meets the expected outcome, and the time to recover once the
faults ended (the first of three full answers in a row).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from chaos.drill.spec import DrillSpec

VERDICTS = ("resilient", "degraded", "broken")
_ALLOWED = {"survives": {"resilient"}, "degrades": {"resilient", "degraded"}, "may_fail": set(VERDICTS)}
RECOVERED_AFTER = 3  # full answers in a row


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


@dataclass(slots=True)
class DrillResult:
    name: str
    started_at: float
    ended_at: float
    phases: list[PhaseRun]
    features: list[FeatureResult]
    aborted: str | None = None  # why, when a guard stopped the drill
    timeline: list[dict[str, Any]] = field(default_factory=list)

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


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def _stats(records: Iterable[dict[str, Any]], entries: Iterable[dict[str, Any]]) -> Stats:
    s = Stats()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    backends: Counter[str] = Counter()
    for r in records:
        s.requests += 1
        latencies.append(r["ms"])
        if r["ok"]:
            s.ok += 1
        elif r["deg"]:
            s.degraded += 1
        else:
            s.failed += 1
            errors[r["k"] or "unknown"] += 1
        if r.get("b") and (r["ok"] or r["deg"]):
            backends[r["b"]] += 1
    routes = Counter(e["route"] for e in entries
                     if e.get("status") is not None and 200 <= e["status"] < 300 and not e.get("broken"))
    s.p50_ms, s.p95_ms = pct(latencies, 50), pct(latencies, 95)
    s.errors, s.backends, s.routes = dict(errors), dict(backends), dict(routes)
    return s


def verdict(stats: Stats, spec: DrillSpec) -> str | None:
    if not stats.requests:
        return None
    if stats.ok_rate >= spec.thresholds.resilient:
        return "resilient"
    if stats.answered_rate < spec.thresholds.broken:
        return "broken"
    return "degraded"


def _recovery(records: list[dict[str, Any]], phases: list[PhaseRun], failed_during: bool) -> float | None:
    """Seconds from the end of the last fault phase to the first of `RECOVERED_AFTER` full answers in a row."""
    ends = [p.end for p in phases if p.faulted]
    if not ends:
        return None
    if not failed_during:
        return 0.0
    fault_end = ends[-1]
    after = [r for r in records if r["t"] >= fault_end]
    run = 0
    for i, r in enumerate(after):
        run = run + 1 if r["ok"] else 0
        if run == RECOVERED_AFTER:
            return round(max(0.0, after[i - RECOVERED_AFTER + 1]["t"] - fault_end), 3)
    return None


def _in(items: list[dict[str, Any]], times: list[float], start: float, end: float) -> list[dict[str, Any]]:
    return items[bisect.bisect_left(times, start):bisect.bisect_left(times, end)]


def _inside(recs: list[dict[str, Any]], times: list[float], start: float, end: float) -> list[dict[str, Any]]:
    """The product requests that lay wholly inside [start, end): one under way when a phase's
    faults came or went met both states, so it speaks for neither."""
    return [r for r in _in(recs, times, start, end) if r["t"] + r["ms"] / 1000 <= end]


def analyse(spec: DrillSpec, records: list[dict[str, Any]], phases: list[PhaseRun], entries: list[dict[str, Any]],
            *, started_at: float, ended_at: float, aborted: str | None = None) -> DrillResult:
    by_feature: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r["t"]):
        by_feature[r["f"]].append(r)
    log_by_feature: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in sorted(entries, key=lambda e: e["at"]):
        if e.get("feature"):
            log_by_feature[e["feature"]].append(e)
    results = []
    for name, feature in spec.features.items():
        recs, log = by_feature.get(name, []), log_by_feature.get(name, [])
        rec_t, log_t = [r["t"] for r in recs], [e["at"] for e in log]
        per_phase = {p.name: _stats(_inside(recs, rec_t, p.start, p.end), _in(log, log_t, p.start, p.end))
                     for p in phases}
        faulted = [p for p in phases if p.faulted]
        during = _stats([r for p in faulted for r in _inside(recs, rec_t, p.start, p.end)],
                        [e for p in faulted for e in _in(log, log_t, p.start, p.end)])
        v = verdict(during, spec)
        results.append(FeatureResult(
            feature=name, expected=feature.outcome, verdict=v,
            meets=(v is not None and v in _ALLOWED[feature.outcome]) or (v is None and feature.outcome == "may_fail"),
            during_faults=during, phases=per_phase,
            recovery_s=_recovery(recs, phases, failed_during=during.ok < during.requests),
            answered_by=sorted(during.routes, key=lambda r: -during.routes[r])))
    return DrillResult(spec.name, started_at, ended_at, phases, results, aborted,
                       timeline(records, started_at, ended_at))


def timeline(records: list[dict[str, Any]], started_at: float, ended_at: float) -> list[dict[str, Any]]:
    """Per second and feature: requests, full and degraded answers, p50 latency (for the dashboard)."""
    buckets: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if started_at <= r["t"] < ended_at:
            buckets[(int(r["t"] - started_at), r["f"])].append(r)
    return [{"s": s, "feature": f, "n": len(rs), "ok": sum(r["ok"] for r in rs), "deg": sum(r["deg"] for r in rs),
             "p50_ms": pct([r["ms"] for r in rs], 50)} for (s, f), rs in sorted(buckets.items())]
