"""How fast does airisk call an outage, how often does it cry wolf, and what does it cost?

This is a simulation, on purpose: outages last hours and come days apart, so measuring
detection against real ones would take years, and against a live emulator it would take
hours per run and never give the same figures twice. Here simulated time is replayed in
seconds, deterministic for a seed, over the REAL `monitor.detect.Detector` (fed
`ProbeResult`s whose times are simulated; nothing else is stubbed).

Ground truth: a timeline of outages whose durations, and the quiet gaps between them, are
drawn (with replacement) from the real incident histories of OpenAI and Anthropic
(bench/data/incident_durations.csv, derived from Chu et al., "An Empirical Characterization
of Outages and Incidents in Public Services for Large Language Models", ICPE 2025), scaled
by ``--scale`` (default 1/30: the real median of ~1 h becomes ~2 probe intervals, so the
outages fall where detection policies differ; time to detect in intervals does not depend
on the scale). During an outage every probe fails: fast (5xx/529 in 0.1-1.5 s) or, for
``--hang-share`` of the outages, by hanging to the 20 s first-token deadline. Outside outages
there is noise that is not an outage: 2% of probes fail at random (5xx, 529, reset, cut
stream) and latency spikes (10-60 s, about one an hour) make answers 4-15x slower. With
``--targets N`` there are N targets of one provider and base URL (a chat model, a small model,
embeddings on one API): outages and latency spikes are the provider's, so they share them; each
target has its own probe phase and its own noise.

Probes start at a base interval (60 s, the default) from a random phase with up to 1 s of
scheduling delay; confirmation probes go when the Detector asks (`Decision.confirm_in`),
the latest request replacing a pending one, and only once no probe of the target is in
flight; a probe still without a first token after ``hedge_after`` gets the confirmations the
Detector asks for (`Detector.hedges`) at once, alongside it: all as `monitor.schedule` does.
Sibling probes (``probe_siblings``), as `monitor.service` does with `monitor.schedule`'s `nudge`:
when a scheduled probe of a target ends DOWN-kind (`observed_status`) on a target that was not
DOWN, every other target that is not DOWN, has no probe in flight and no confirmation
coming is probed at once: off schedule (counted with the confirmation probes), but to its
Detector the opening of its own run of confirmations, like a scheduled probe. In the same run,
over the same timeline, probe times and noise:

- airisk: `DetectionConfig()` defaults (latency limit 4 s set, to show spikes do not trip it);
  with several targets, also the defaults without ``probe_siblings`` (each target on its own);
- baseline: down after 3 consecutive failures at the base interval, no confirmation probes
  (nor sibling probes);
- floor: not a policy, a bound: DOWN at the end of the first probe that starts inside the
  outage. No prober can beat it on average: its median is half an interval plus a probe. With
  several targets, every target's floor is the end of the first base probe of ANY of them that
  starts inside the outage: the best a prober with that many looks can do.

Figures: time to detect (outage start to the DOWN transition) as a multiple of the interval,
median and p95 over outages of >= 2 intervals (a missed one counts as infinite); false
alarms (DOWN with no outage in its evidence); missed outages (>= 2 intervals, never DOWN);
DEGRADED notices with no outage in their evidence; confirmation probes per hour per target.
All per target: with N targets each outage counts N times, once for each target's own first DOWN.
``--sweep`` adds other thresholds, to show the trade-off behind the defaults.

Usage: .venv/bin/python bench/detection.py [--seed N | --seeds 1 2 3] [--sweep]
       .venv/bin/python bench/detection.py --targets 3     # three targets on one endpoint: sibling probes
       .venv/bin/python bench/detection.py --derive ../shared/data/llm_provider_incidents_2020-2024.csv
"""

from __future__ import annotations

import argparse
import bisect
import csv
import heapq
import itertools
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.config.detection import DetectionConfig  # noqa: E402
from monitor.detect import Detector, observed_status  # noqa: E402
from monitor.schedule import DEFAULT_MAX_CONCURRENCY, HEDGE_BEFORE_DEADLINE  # noqa: E402
from probes.result import ErrorKind, ProbeResult, Status  # noqa: E402

DATA = ROOT / "bench" / "data" / "incident_durations.csv"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
INTERVAL = 60.0
FIRST_TOKEN_DEADLINE = 20.0
NOISE_RATE = 0.02
NOISE_KINDS = (ErrorKind.SERVER_ERROR, ErrorKind.OVERLOADED, ErrorKind.CONNECTION_RESET, ErrorKind.STREAM_CUT)
OUTAGE_KINDS = (ErrorKind.SERVER_ERROR, ErrorKind.OVERLOADED)
SPIKE_EVERY = 3600.0  # mean seconds between latency spikes (absolute time: spikes are not scaled)
LATENCY_LIMIT_MS = 4000.0
HEDGE_ROOM = DEFAULT_MAX_CONCURRENCY // 4  # the scheduler's cap on hedges in flight, all targets together
GOALS = {"median": 0.5, "p95": 1.2}
CITATION = ('Chu et al., "An Empirical Characterization of Outages and Incidents in Public Services for '
            'Large Language Models", ICPE 2025 (arXiv 2501.12469; atlarge-research/llm-service-analysis; '
            "Zenodo 14018219)")


# --- ground truth --------------------------------------------------------------------------------


def load_table(path: Path = DATA) -> tuple[list[float], list[float]]:
    """(durations, gaps) in real seconds: incidents posted with zero length are left out of the
    durations (they were posted after the fact, so their length is unknown)."""
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    durations = [float(r["duration_s"]) for r in rows if float(r["duration_s"]) > 0]
    gaps = [float(r["gap_s"]) for r in rows if r["gap_s"]]
    return durations, gaps


@dataclass(frozen=True, slots=True)
class Outage:
    start: float
    end: float
    hang: bool
    kind: ErrorKind

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass(slots=True)
class World:
    """One seed's timeline: outages, latency spikes, base probe times of each target. Probe outcomes
    are a function of (seed, target, start time), so every policy meets the same world."""

    seed: int
    outages: list[Outage]
    spikes: list[tuple[float, float, float]]  # start, end, TTFT factor
    base_times: list[list[float]]  # per target
    horizon: float
    _starts: list[float] = field(default_factory=list)
    _spike_starts: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._starts = [o.start for o in self.outages]
        self._spike_starts = [s for s, _, _ in self.spikes]

    @property
    def targets(self) -> int:
        return len(self.base_times)

    def outage_at(self, t: float) -> Outage | None:
        i = bisect.bisect_right(self._starts, t) - 1
        return self.outages[i] if i >= 0 and t < self.outages[i].end else None

    def overlaps_outage(self, a: float, b: float) -> Outage | None:
        """The outage overlapping [a, b], if any (outages never overlap one another)."""
        i = bisect.bisect_right(self._starts, b) - 1
        return self.outages[i] if i >= 0 and a < self.outages[i].end else None

    def probe(self, t: float, j: int = 0) -> ProbeResult:
        """The result of a probe of target ``j`` that starts at simulated second ``t``."""
        # Outages and spikes are the provider's; noise is each target's own (target 0's as with one).
        rng = random.Random(self.seed * 1_000_000_007 + round(t * 1e6) + (j << 64))
        at, target = T0 + timedelta(seconds=t), _name(j)
        outage = self.outage_at(t)
        if outage is not None:
            if outage.hang:
                return _result(target, at, ErrorKind.FIRST_TOKEN_TIMEOUT, total_ms=FIRST_TOKEN_DEADLINE * 1000)
            return _result(target, at, outage.kind, total_ms=rng.uniform(100, 1500), http=529)
        if rng.random() < NOISE_RATE:
            return _result(target, at, rng.choice(NOISE_KINDS), total_ms=rng.uniform(100, 1500), http=500)
        ttft = rng.lognormvariate(math.log(450), 0.3)
        i = bisect.bisect_right(self._spike_starts, t) - 1
        if i >= 0 and t < self.spikes[i][1]:
            ttft *= self.spikes[i][2]
        return _result(target, at, ErrorKind.OK, ttft_ms=ttft, total_ms=ttft + rng.uniform(250, 400))


def _name(j: int) -> str:
    return f"sim{j}"


def _result(target: str, at: datetime, kind: ErrorKind, *, total_ms: float, ttft_ms: float | None = None,
            http: int | None = None) -> ProbeResult:
    return ProbeResult(target=target, provider="sim", model="sim", at=at, status=kind.status, error_kind=kind,
                       http_status=http if kind is not ErrorKind.OK else 200, ttft_ms=ttft_ms, total_ms=total_ms)


def make_world(seed: int, *, outages: int, scale: float, hang_share: float, targets: int = 1) -> World:
    durations, gaps = load_table()
    rng = random.Random(seed)
    t, timeline = rng.choice(gaps) * scale, []
    for _ in range(outages):
        length = rng.choice(durations) * scale
        timeline.append(Outage(t, t + length, rng.random() < hang_share, rng.choice(OUTAGE_KINDS)))
        t += length + rng.choice(gaps) * scale
    horizon = t
    spikes, s = [], rng.expovariate(1 / SPIKE_EVERY)
    while s < horizon:
        spikes.append((s, s + rng.uniform(10, 60), rng.uniform(4, 15)))
        s += rng.expovariate(1 / SPIKE_EVERY)
    # Target 0's probe times are drawn as with one target; the others' from their own generators,
    # so adding targets leaves target 0's world as it was.
    base = [_base_times(rng, horizon), *(_base_times(random.Random(f"{seed}:{j}"), horizon) for j in range(1, targets))]
    return World(seed, timeline, spikes, base, horizon)


def _base_times(rng: random.Random, horizon: float) -> list[float]:
    """One target's scheduled probes: a random phase, then one an interval, each up to 1 s late."""
    phase = rng.uniform(0, INTERVAL)
    return [phase + k * INTERVAL + rng.uniform(0, 1.0) for k in range(int((horizon - phase) // INTERVAL))]


# --- one policy over one world -------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    policy: str
    ttd: list[float] = field(default_factory=list)  # in intervals, outages >= 2 intervals, inf if missed
    ttd_by_mode: dict[str, list[float]] = field(default_factory=lambda: {"fast": [], "hang": []})
    short_detected: int = 0
    short_total: int = 0
    missed: int = 0
    false_alarms: int = 0
    degraded_noise: int = 0
    confirms: int = 0
    confirms_quiet: int = 0  # confirmation probes started outside any outage
    probes: int = 0
    hours: float = 0.0
    recover: list[float] = field(default_factory=list)  # outage end to leaving DOWN, intervals


@dataclass(slots=True)
class _Target:
    """One target in `simulate`: its own Detector, its scheduler state, its transitions and its score."""

    detector: Detector
    run: Run
    pending_confirm: float | None = None  # start time of the scheduled (not yet started) confirmation
    inflight: int = 0  # probes under way, hedges counted from the moment they are sent (as monitor.schedule)
    want_confirm: float | None = None  # the latest result's request, made once none is in flight
    downs: list[tuple[float, float]] = field(default_factory=list)  # (since, at) of each transition to DOWN
    changes: list[tuple[float, Status]] = field(default_factory=list)  # (at, to) of every transition


def simulate(world: World, config: DetectionConfig, policy: str) -> Run:
    """Feeds the policy's probes of each target to its own real Detector in simulated time and scores
    their transitions (one Run for all the targets)."""
    sims = [_Target(Detector(config, _name(j)), Run(policy)) for j in range(world.targets)]
    # (time, tiebreak, what, target, result; for "hedge?" the waiting probe's start and whether it confirms)
    events: list[tuple[float, int, str, int, ProbeResult | tuple[float, bool] | None]] = []
    ticket = itertools.count()
    for j, times in enumerate(world.base_times):
        events += [(t, next(ticket), "base", j, None) for t in times]
    heapq.heapify(events)

    def push(at: float, what: str, j: int, payload: ProbeResult | tuple[float, bool] | None = None) -> None:
        heapq.heappush(events, (at, next(ticket), what, j, payload))

    def confirm_at(j: int, at: float, what: str = "confirm") -> None:
        sims[j].pending_confirm = at
        push(at, what, j)

    hedging = 0  # hedges in flight, all targets together
    while events:
        t, _, what, j, result = heapq.heappop(events)
        s = sims[j]
        if what == "hedge?":  # a probe in flight without a first token for its hedge_after
            started, confirming = result
            wanted = s.detector.hedges(at=T0 + timedelta(seconds=started), confirm=confirming) - (s.inflight - 1)
            for k in range(min(wanted, HEDGE_ROOM - hedging)):  # (4 hedges a target at most: binds past 4 targets)
                s.inflight += 1
                hedging += 1
                push(t + 0.001 * k, "hedge", j)  # 1 ms apart: each its own outcome
            continue
        if what in ("base", "confirm", "hedge", "sibling"):
            if what in ("confirm", "sibling"):
                if s.pending_confirm != t:
                    continue  # replaced by a later request
                s.pending_confirm = None
            if what != "base":
                s.run.confirms += 1
                s.run.confirms_quiet += world.outage_at(t) is None
            s.run.probes += 1
            s.inflight += what != "hedge"
            result = world.probe(t, j)
            end = t + (result.total_ms or 0) / 1000
            push(end, "end:" + what, j, result)
            after = s.detector.hedge_after()
            after = None if after is None else min(after, HEDGE_BEFORE_DEADLINE * FIRST_TOKEN_DEADLINE)
            if after is not None and (result.ttft_ms is None or result.ttft_ms > after * 1000) and end > t + after:
                push(t + after, "hedge?", j, (t, what not in ("base", "sibling")))
            continue
        s.inflight -= 1
        hedging -= what == "end:hedge"
        # A sibling probe opens this target's own run of confirmations, as a scheduled probe would.
        was = s.detector.state
        decision = s.detector.feed(result, confirm=what not in ("end:base", "end:sibling"))
        s.want_confirm = decision.confirm_in  # the latest result's word replaces the earlier ones'
        if s.inflight == 0 and s.want_confirm is not None:  # else the last one in flight decides
            confirm_at(j, t + s.want_confirm)
            s.want_confirm = None
        if (config.probe_siblings and what == "end:base" and observed_status(result) is Status.DOWN
                and was is not Status.DOWN):  # monitor.service: Scheduler.nudge the siblings
            for k, other in enumerate(sims):
                if (k != j and other.detector.state is not Status.DOWN and other.inflight == 0
                        and other.pending_confirm is None):
                    confirm_at(k, t, "sibling")
        tr = decision.transition
        if tr is None:
            continue
        since, at = _sec(tr.since), _sec(tr.at)
        s.changes.append((at, tr.to))
        if tr.to is Status.DOWN:
            s.downs.append((since, at))
            if world.overlaps_outage(since, at) is None:
                s.run.false_alarms += 1
        if tr.to is Status.DEGRADED and tr.from_ is Status.UP and world.overlaps_outage(since, at) is None:
            s.run.degraded_noise += 1
    for s in sims:
        _score(world, s.run, s.downs, s.changes)
        s.run.hours = world.horizon / 3600
    return merge([s.run for s in sims])


def _score(world: World, run: Run, downs: list[tuple[float, float]], changes: list[tuple[float, Status]]) -> None:
    down_ats = [at for _, at in downs]
    change_ats = [at for at, _ in changes]

    def state_at(t: float) -> tuple[int, Status]:
        k = bisect.bisect_right(change_ats, t) - 1
        return k, changes[k][1] if k >= 0 else Status.UP

    for o in world.outages:
        if state_at(o.start)[1] is Status.DOWN:
            hit: float | None = o.start  # still DOWN from the one before: counts as detected at once
        else:  # the first DOWN whose evidence overlaps the outage
            i = bisect.bisect_left(down_ats, o.start)
            hit = down_ats[i] if i < len(downs) and downs[i][0] < o.end else None
        _tally(run, o, hit)
        k, state = state_at(o.end)
        if state is Status.DOWN and k + 1 < len(changes):
            run.recover.append((changes[k + 1][0] - o.end) / INTERVAL)


def _tally(run: Run, o: Outage, hit: float | None) -> None:
    """Counts one outage for ``run``: detected at ``hit`` (simulated seconds), or missed (None)."""
    if o.length >= 2 * INTERVAL:
        ttd = (hit - o.start) / INTERVAL if hit is not None else math.inf
        run.ttd.append(ttd)
        run.ttd_by_mode["hang" if o.hang else "fast"].append(ttd)
        run.missed += hit is None
    else:
        run.short_total += 1
        run.short_detected += hit is not None


def floor_run(world: World) -> Run:
    """The bound: each target DOWN at the end of the first base probe of any target that starts inside
    the outage (with one target, its own first)."""
    run = Run("floor")
    starts = sorted((t, j) for j, times in enumerate(world.base_times) for t in times)
    for o in world.outages:
        i = bisect.bisect_left(starts, (o.start,))
        hit = None
        if i < len(starts) and starts[i][0] < o.end:
            t, j = starts[i]
            hit = t + (world.probe(t, j).total_ms or 0) / 1000
        for _ in range(world.targets):
            _tally(run, o, hit)
    run.probes, run.hours = len(starts), world.targets * world.horizon / 3600
    return run


def _sec(when: datetime) -> float:
    return (when - T0).total_seconds()


# --- report --------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile by the nearest-rank method (an actual value, inf if a miss is there)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def merge(runs: list[Run]) -> Run:
    out = Run(runs[0].policy)
    for r in runs:
        out.ttd += r.ttd
        for mode in out.ttd_by_mode:
            out.ttd_by_mode[mode] += r.ttd_by_mode[mode]
        out.recover += r.recover
        for name in ("short_detected", "short_total", "missed", "false_alarms", "degraded_noise", "confirms",
                     "confirms_quiet", "probes", "hours"):
            setattr(out, name, getattr(out, name) + getattr(r, name))
    return out


def _x(value: float, width: int = 6) -> str:
    return f"{'inf' if math.isinf(value) else f'{value:.2f}':>{width}}"


HEADER = (f"{'':<36}{'n':>5}{'median':>8}{'p95':>7}{'missed':>8}{'short':>10}{'false':>7}{'degr.':>7}"
          f"{'recov.':>8}  confirms/h")


def row(label: str, r: Run) -> str:
    policy = r.policy != "floor"
    dash = "-"
    cells = [
        f"{label:<36}{len(r.ttd):>5}{_x(pct(r.ttd, 50), 8)}{_x(pct(r.ttd, 95), 7)}{r.missed:>8}",
        f"{f'{r.short_detected}/{r.short_total}':>10}",
        f"{r.false_alarms if policy else dash:>7}{r.degraded_noise if policy else dash:>7}",
        _x(statistics.median(r.recover), 8) if r.recover else f"{dash:>8}",
        f"  {r.confirms / r.hours:.2f} ({r.confirms_quiet / r.hours:.2f} quiet)" if policy else "  -",
    ]
    return "".join(cells)


def verdict(r: Run) -> str:
    med, p95 = pct(r.ttd, 50), pct(r.ttd, 95)
    checks = [
        (f"median {med:.2f}", med <= GOALS["median"]),
        (f"p95 {_x(p95, 0)}", p95 <= GOALS["p95"]),
        (f"false alarms {r.false_alarms}", r.false_alarms == 0 or r.policy == "floor"),
        (f"missed {r.missed}", r.missed == 0),
    ]
    return "  ".join(f"{'ok  ' if ok else 'FAIL'} {text:<17}" for text, ok in checks).rstrip()


Policies = list[tuple[str, DetectionConfig]]


def policies(sweep: bool, targets: int = 1) -> tuple[Policies, Policies]:
    """(the policies shown for each seed, the sweep's others)."""
    shown = [("airisk (defaults)", DetectionConfig(degraded_ttft_ms=LATENCY_LIMIT_MS))]
    if targets > 1:
        shown.append(("defaults without probe_siblings", DetectionConfig(degraded_ttft_ms=LATENCY_LIMIT_MS,
                                                                         probe_siblings=False)))
    # Only its DOWN rule matters: the error-rate rule is switched off (1.0 of a full window).
    shown.append(("baseline (3 fails, no confirm)", DetectionConfig(failure_threshold=3, confirm_after=[],
                                                                    degraded_error_rate=1.0, probe_siblings=False)))
    out: Policies = []
    if sweep:
        out.append(("defaults without hedge_after", DetectionConfig(degraded_ttft_ms=LATENCY_LIMIT_MS,
                                                                    hedge_after=None)))
        for ft, confirm, window in ((2, [2.0, 5.0], 10), (3, [2.0, 5.0], 10), (3, [1.0, 2.0], 20),
                                    (4, [1.0, 1.0, 1.0], 20), (4, [1.0, 2.0, 3.0], 20), (4, [1.0, 2.0, 3.0], 10),
                                    (5, [0.5, 1.0, 1.5, 2.0], 20), (5, [1.0, 2.0, 3.0, 4.0], 20)):
            label = f"ft={ft} confirm={'/'.join(f'{c:g}' for c in confirm)}s window={window}"
            out.append((label, DetectionConfig(failure_threshold=ft, confirm_after=confirm, window=window,
                                               degraded_ttft_ms=LATENCY_LIMIT_MS)))
    return shown, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, help="run this one seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--outages", type=int, default=400, help="outages per seed")
    ap.add_argument("--scale", type=float, default=1 / 30, help="time scale of the real durations and gaps")
    ap.add_argument("--hang-share", type=float, default=0.1, help="share of outages that hang rather than fail fast")
    ap.add_argument("--targets", type=int, default=1, help="targets of one provider and base URL (sharing outages)")
    ap.add_argument("--sweep", action="store_true", help="also run other thresholds (the trade-off)")
    ap.add_argument("--derive", metavar="CSV", help="write bench/data/incident_durations.csv from the study's CSV")
    args = ap.parse_args(argv)
    if args.targets < 1:
        ap.error("--targets must be at least 1")
    if args.derive:
        derive(Path(args.derive), DATA)
        return 0
    seeds = [args.seed] if args.seed is not None else args.seeds
    started = time.perf_counter()
    headline, others = policies(args.sweep, args.targets)
    table = headline + others
    shown = [label for label, _ in headline]
    airisk = shown[0]
    runs: dict[str, list[Run]] = {label: [] for label, _ in table} | {"floor": []}
    labels = {label: label for label in runs} | {"floor": "floor (a bound, not a policy)"}
    cfg = DetectionConfig()
    print(f"simulated time: base interval {INTERVAL:g} s; {args.outages} outages a seed, real durations and gaps "
          f"x{args.scale:.4g}; {args.hang_share:.0%} of outages hang ({FIRST_TOKEN_DEADLINE:g} s deadline), the rest "
          f"fail fast;\nnoise: {NOISE_RATE:.0%} random failures, latency spikes (10-60 s, 4-15x, ~1/h)")
    if args.targets > 1:
        print(f"targets: {args.targets} of one provider and base URL, sharing its outages and spikes, each with its "
              "own probe phase and noise;\nprobe_siblings: a failed scheduled probe of one has the others probed "
              "at once (unless DOWN, probing or confirming)")
    print(f"airisk defaults: failure_threshold {cfg.failure_threshold}, confirm_after "
          f"[{', '.join(f'{c:g}s' for c in cfg.confirm_after)}], hedge_after {cfg.hedge_after:g}s, "
          f"success_threshold {cfg.success_threshold}, "
          f"window {cfg.window}, degraded_error_rate {cfg.degraded_error_rate:g}; here also degraded_ttft_ms "
          f"{LATENCY_LIMIT_MS:g}")
    print("n, median, p95: time to detect in probe intervals over outages >= 2 intervals (a miss counts as inf);")
    print("short: shorter outages detected; false: DOWN with no outage in its evidence; degr.: DEGRADED likewise;")
    print("recov.: outage end to leaving DOWN (median, intervals); confirms: confirmation probes per hour per target")
    if args.targets > 1:
        print(f"all per target: n counts each outage {args.targets} times; floor: each target DOWN at the end of the "
              "first base probe of ANY target inside the outage")
    for seed in seeds:
        world = make_world(seed, outages=args.outages, scale=args.scale, hang_share=args.hang_share,
                           targets=args.targets)
        print(f"\nseed {seed}: {world.horizon / 3600:.0f} simulated hours, "
              f"{sum(map(len, world.base_times))} base probes, "
              f"{sum(o.length >= 2 * INTERVAL for o in world.outages)} outages >= 2 intervals, "
              f"{len(world.spikes)} latency spikes")
        print(HEADER)
        for label, config in table:
            runs[label].append(simulate(world, config, label))
            if label in shown:
                print(row(label, runs[label][-1]))
        runs["floor"].append(floor_run(world))
        print(row(labels["floor"], runs["floor"][-1]))
    merged = {label: merge(rs) for label, rs in runs.items()}
    hours = merged["floor"].hours / args.targets
    per = f" ({args.targets} targets)" if args.targets > 1 else ""
    print(f"\nall seeds ({', '.join(map(str, seeds))}): {hours:.0f} simulated hours a policy{per}")
    print(HEADER)
    for label, r in merged.items():
        print(row(labels[label], r))
    print("\nby outage kind, all seeds: median / p95 (intervals)")
    for label in (*shown, "floor"):
        parts = [f"{mode} n={len(v)}: {_x(pct(v, 50), 0)} / {_x(pct(v, 95), 0)}"
                 for mode, v in merged[label].ttd_by_mode.items()]
        print(f"  {labels[label]:<34}" + "    ".join(parts))
    print("\ngoals (all seeds): median <= 0.5, p95 <= 1.2 intervals, no false alarm, no outage >= 2 intervals missed")
    fast = Run(airisk, ttd=merged[airisk].ttd_by_mode["fast"], missed=sum(math.isinf(v) for v in
                                                                         merged[airisk].ttd_by_mode["fast"]),
               false_alarms=merged[airisk].false_alarms)
    judged = [(label, merged[label]) for label in (*shown, "floor")] + [("airisk, fast-failing outages only", fast)]
    for label, r in judged:
        print(f"  {labels.get(label, label):<34}{verdict(r)}")
    print(f"\n({time.perf_counter() - started:.0f} s wall)")
    return 0


# --- the derived table ---------------------------------------------------------------------------


def derive(source: Path, dest: Path) -> None:
    """Writes per incident of OpenAI and Anthropic its duration and the gap to that provider's
    next incident: figures only (the vendors' texts stay in the study's files)."""
    with source.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["provider"] in ("openai", "anthropic")]
    out = []
    for provider in ("openai", "anthropic"):
        own = sorted((r for r in rows if r["provider"] == provider), key=lambda r: r["start_timestamp"])
        for cur, nxt in zip(own, [*own[1:], None], strict=True):
            start, close = (datetime.fromisoformat(cur[k]) for k in ("start_timestamp", "close_timestamp"))
            gap = (datetime.fromisoformat(nxt["start_timestamp"]) - close).total_seconds() if nxt else None
            out.append((provider, int((close - start).total_seconds()), int(gap) if gap and gap > 0 else ""))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", encoding="utf-8", newline="") as f:
        f.write(f"# Incident durations and gaps of OpenAI and Anthropic, from {CITATION}; their status pages "
                "up to 2024-08-31.\n")
        f.write("# Derived by `bench/detection.py --derive`: figures only. duration_s: close minus start "
                "(0: posted only after the fact). gap_s: this close to the provider's next start "
                "(empty: the last one, or the next overlaps).\n")
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["provider", "duration_s", "gap_s"])
        writer.writerows(out)
    print(f"wrote {dest} ({len(out)} incidents)")


if __name__ == "__main__":
    raise SystemExit(main())
