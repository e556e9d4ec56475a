"""The world of the alert-noise benchmark (bench/alert_noise.py): days of three regions watching six
targets, what went wrong where and when (the ground truth), and every probe's outcome.

Three monitors, one a region, watch the same six targets (three models of OpenAI, three of
Anthropic). What happens to them:

- Global outages: each provider's outages, with durations and the quiet gaps between them drawn
  (with replacement) from that provider's real incident history (bench/data/incident_durations.csv,
  from Chu et al., "An Empirical Characterization of Outages and Incidents in Public Services for
  Large Language Models", ICPE 2025). An outage hits all three of the provider's targets and is seen
  from every region, each region's view starting and ending up to `ONSET_JITTER` seconds late
  (routes, caches and load balancers do not all flip at once). Every probe inside fails: fast
  (5xx, 529 in 0.1-1.5 s) or, for `HANG_SHARE` of the outages, by hanging to the first-token
  deadline, as in bench/detection.py.
- Regional faults, in `FAULTY` only, at times no global outage is near (so the truth is never
  ambiguous): network blips (about `BLIPS_PER_DAY` a day, a few seconds each, every target of
  the region fails with connection resets) and regional outages (one every `REGIONAL_EVERY_DAYS`
  days on average, `REGIONAL_MINUTES` long, the region's route to one provider times out on
  connect).
- A monitor death: `DYING`'s monitor is gone for `DEATH_SECONDS`, no probe and no heartbeat from
  it, starting 10-30 minutes before a global outage (one drawn at random among those that leave
  room), so the survivors must page it on their own. On restart its probes begin again at a new
  phase, as a restarted scheduler's do.
- Background noise everywhere, at all times: `NOISE_RATE` of probes fail at random (5xx, 529,
  reset, cut stream), as in bench/detection.py.

Everything is a function of the seed: a probe's outcome depends only on (seed, region, target,
start time), so every pipeline and every quorum meets the same world.
"""

from __future__ import annotations

import bisect
import csv
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from bench.detection import DATA, FIRST_TOKEN_DEADLINE, NOISE_KINDS, NOISE_RATE, OUTAGE_KINDS, T0
from probes.result import ErrorKind, ProbeResult

REGIONS = ("us-east", "eu-west", "ap-south")
FAULTY = "eu-west"
DYING = "us-east"
TARGETS = {
    "openai-chat": "openai", "openai-mini": "openai", "openai-embed": "openai",
    "anthropic-sonnet": "anthropic", "anthropic-haiku": "anthropic", "anthropic-opus": "anthropic",
}
PROVIDERS = ("openai", "anthropic")
INTERVAL = 60.0
ONSET_JITTER = 5.0
HANG_SHARE = 0.1
BLIPS_PER_DAY = 3.0
BLIP_MEDIAN_S = 6.0  # lognormal, clipped to 1-60 s: most are over before a confirmation run, a few are not
REGIONAL_EVERY_DAYS = 5.0
REGIONAL_MINUTES = (2.0, 10.0)
DEATH_SECONDS = 3600.0
DEATH_LEAD_S = (600.0, 1800.0)  # the death starts this long before the global outage it covers
CONNECT_DEADLINE = 5.0
QUIET_MARGIN = 600.0  # regional faults stay this far from any global outage of the targets they hit
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Fault:
    """One thing that went wrong, as it was: which targets, seen from which regions, from when to when."""

    kind: str
    """global | regional | blip"""
    start: float
    """The earliest onset in any region (simulated seconds): time to page is measured from here."""
    end: float
    """The latest end in any region."""
    targets: frozenset[str]
    windows: tuple[tuple[str, float, float], ...]
    """(region, onset, end) for each region that sees it."""
    error: ErrorKind
    hang: bool = False
    provider: str = ""
    """The provider whose outage this is ('' for a blip: the region's network, every provider)."""

    @property
    def regions(self) -> frozenset[str]:
        return frozenset(r for r, _, _ in self.windows)

    def window(self, region: str) -> tuple[float, float] | None:
        return next(((a, b) for r, a, b in self.windows if r == region), None)


@dataclass(frozen=True, slots=True)
class Death:
    """A monitor gone: no probe, no result, no heartbeat from ``region`` in [start, end)."""

    region: str
    start: float
    end: float
    covers: Fault | None
    """The global outage that starts inside it (None: the seed left no room for one)."""

    def holds(self, region: str, t: float) -> bool:
        return region == self.region and self.start <= t < self.end


@dataclass(slots=True)
class Timeline:
    """One seed's world. Build it with `build`; ask it `probe`, `fault_at`, `base_times`."""

    seed: int
    days: float
    horizon: float
    faults: list[Fault]
    death: Death | None
    _index: dict[tuple[str, str], tuple[list[float], list[tuple[float, float, Fault]]]] = field(
        default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        spans: dict[tuple[str, str], list[tuple[float, float, Fault]]] = {}
        for f in self.faults:
            for region, a, b in f.windows:
                for target in f.targets:
                    spans.setdefault((region, target), []).append((a, b, f))
        for key, items in spans.items():
            items.sort(key=lambda s: s[0])
            self._index[key] = ([a for a, _, _ in items], items)

    def of_kind(self, kind: str) -> list[Fault]:
        return [f for f in self.faults if f.kind == kind]

    def fault_at(self, region: str, target: str, t: float) -> Fault | None:
        """The fault ``target`` suffers as seen from ``region`` at second ``t``, if any (they never overlap)."""
        starts, items = self._index.get((region, target), ([], []))
        i = bisect.bisect_right(starts, t) - 1
        return items[i][2] if i >= 0 and t < items[i][1] else None

    def faults_overlapping(self, region: str, target: str, a: float, b: float) -> list[Fault]:
        """The faults of ``target`` seen from ``region`` whose window overlaps [a, b]."""
        starts, items = self._index.get((region, target), ([], []))
        i = bisect.bisect_right(starts, b)
        return [f for s, e, f in items[:i] if e >= a and s <= b]

    def alive(self, region: str, t: float) -> bool:
        """Whether ``region``'s monitor is running at ``t``."""
        return self.death is None or not self.death.holds(region, t)

    def base_times(self, region: str, target: str) -> list[float]:
        """The scheduled probes of ``target`` from ``region``: a random phase, then one an interval, each up
        to 1 s late; none while its monitor is dead, and a new phase once it is back."""
        rng = random.Random(f"{self.seed}:base:{region}:{target}")
        out = list(_ticks(rng, 0.0, self.horizon))
        d = self.death
        if d is not None and d.region == region:
            out = [t for t in out if t < d.start] + list(_ticks(rng, d.end, self.horizon))
        return out

    def heartbeat_times(self, region: str, every: float) -> list[float]:
        """When ``region``'s monitor writes its heartbeat: at start, then every ``every`` seconds; none while
        dead, and at once on restart."""
        rng = random.Random(f"{self.seed}:heartbeat:{region}")
        first = rng.uniform(0, min(every, 5.0))
        out = [first + k * every for k in range(int((self.horizon - first) // every) + 1)]
        d = self.death
        if d is not None and d.region == region:
            out = [t for t in out if t < d.start] + [d.end + k * every for k in range(int((self.horizon - d.end)
                                                                                         // every) + 1)]
        return out

    def probe(self, region: str, target: str, t: float) -> ProbeResult:
        """The result of a probe of ``target`` from ``region`` that starts at simulated second ``t``."""
        key = (REGIONS.index(region) * 16 + list(TARGETS).index(target)) << 64
        rng = random.Random(self.seed * 1_000_000_007 + round(t * 1e6) + key)
        at = T0 + timedelta(seconds=t)
        fault = self.fault_at(region, target, t)
        if fault is not None:
            if fault.hang:
                return _result(target, at, ErrorKind.FIRST_TOKEN_TIMEOUT, total_ms=FIRST_TOKEN_DEADLINE * 1000)
            if fault.error is ErrorKind.CONNECT_TIMEOUT:
                return _result(target, at, fault.error, total_ms=CONNECT_DEADLINE * 1000)
            return _result(target, at, fault.error, total_ms=rng.uniform(100, 1500),
                           http=529 if fault.error is ErrorKind.OVERLOADED else 500)
        if rng.random() < NOISE_RATE:
            return _result(target, at, rng.choice(NOISE_KINDS), total_ms=rng.uniform(100, 1500), http=500)
        ttft = rng.lognormvariate(math.log(450), 0.3)
        return _result(target, at, ErrorKind.OK, ttft_ms=ttft, total_ms=ttft + rng.uniform(250, 400))


def _ticks(rng: random.Random, start: float, horizon: float) -> Iterator[float]:
    phase = start + rng.uniform(0, INTERVAL)
    for k in range(max(0, int((horizon - phase) // INTERVAL))):
        yield phase + k * INTERVAL + rng.uniform(0, 1.0)


def _result(target: str, at, kind: ErrorKind, *, total_ms: float, ttft_ms: float | None = None,
            http: int | None = None) -> ProbeResult:
    provider = TARGETS[target]
    return ProbeResult(target=target, provider=provider, model=target, at=at, status=kind.status, error_kind=kind,
                       http_status=http if kind is not ErrorKind.OK else 200, ttft_ms=ttft_ms, total_ms=total_ms)


def load_provider_table(provider: str) -> tuple[list[float], list[float]]:
    """(durations, gaps) in real seconds of one provider's incidents, from the derived table that
    bench/detection.py reads (incidents posted with zero length left out of the durations)."""
    with DATA.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(line for line in f if not line.startswith("#")) if r["provider"] == provider]
    durations = [float(r["duration_s"]) for r in rows if float(r["duration_s"]) > 0]
    gaps = [float(r["gap_s"]) for r in rows if r["gap_s"]]
    return durations, gaps


def build(seed: int, *, days: float = 30.0) -> Timeline:
    """The world of one seed: ``days`` of global outages, regional faults, one monitor death, noise."""
    if not days > 0:
        raise ValueError(f"days: must be above 0, got {days!r}")
    horizon = days * DAY
    faults = _global_outages(seed, horizon)
    faults += _regional_faults(seed, horizon, faults)
    faults.sort(key=lambda f: (f.start, f.kind, f.provider))
    return Timeline(seed, days, horizon, faults, _death(seed, horizon, faults))


def _global_outages(seed: int, horizon: float) -> list[Fault]:
    out = []
    names = {p: frozenset(t for t, q in TARGETS.items() if q == p) for p in PROVIDERS}
    for provider in PROVIDERS:
        durations, gaps = load_provider_table(provider)
        rng = random.Random(f"{seed}:global:{provider}")
        t = rng.random() * rng.choice(gaps)  # as if the history had begun long before
        while t < horizon:
            length = rng.choice(durations)
            windows = []
            for region in REGIONS:
                a, b = t + rng.uniform(0, ONSET_JITTER), t + length + rng.uniform(0, ONSET_JITTER)
                windows.append((region, a, b))
            out.append(Fault("global", min(a for _, a, _ in windows), max(b for _, _, b in windows), names[provider],
                             tuple(windows), rng.choice(OUTAGE_KINDS), rng.random() < HANG_SHARE, provider))
            t += length + rng.choice(gaps)
    return out


def _regional_faults(seed: int, horizon: float, outages: list[Fault]) -> list[Fault]:
    """Blips and regional outages in `FAULTY`, each in a quiet time (no global outage of the targets it
    hits within `QUIET_MARGIN`): a draw that lands near one is dropped, so the rate is a little lower."""
    rng = random.Random(f"{seed}:regional")

    def quiet(a: float, b: float, targets: frozenset[str]) -> bool:
        return all(b + QUIET_MARGIN < o.start or a - QUIET_MARGIN > o.end for o in outages if o.targets & targets)

    out: list[Fault] = []
    every = frozenset(TARGETS)
    t = rng.expovariate(BLIPS_PER_DAY / DAY)
    while t < horizon:
        length = min(60.0, max(1.0, rng.lognormvariate(math.log(BLIP_MEDIAN_S), 0.8)))
        if quiet(t, t + length, every):
            out.append(Fault("blip", t, t + length, every, ((FAULTY, t, t + length),), ErrorKind.CONNECTION_RESET))
        t += length + rng.expovariate(BLIPS_PER_DAY / DAY)
    t = rng.expovariate(1 / (REGIONAL_EVERY_DAYS * DAY))
    while t < horizon:
        provider = rng.choice(PROVIDERS)
        targets = frozenset(n for n, p in TARGETS.items() if p == provider)
        length = rng.uniform(*REGIONAL_MINUTES) * 60
        clash = any(f.start <= t + length and t <= f.end for f in out)
        if quiet(t, t + length, targets) and not clash:
            out.append(Fault("regional", t, t + length, targets, ((FAULTY, t, t + length),), ErrorKind.CONNECT_TIMEOUT,
                             provider=provider))
        t += length + rng.expovariate(1 / (REGIONAL_EVERY_DAYS * DAY))
    return out


def _death(seed: int, horizon: float, faults: list[Fault]) -> Death:
    rng = random.Random(f"{seed}:death")
    lead = rng.uniform(*DEATH_LEAD_S)
    room = [f for f in faults if f.kind == "global" and f.start - lead > 2 * INTERVAL
            and f.start - lead + DEATH_SECONDS < horizon - 2 * INTERVAL]
    if not room:
        start = max(0.0, horizon / 2 - DEATH_SECONDS / 2)
        return Death(DYING, start, start + DEATH_SECONDS, None)
    covered = rng.choice(room)
    start = covered.start - lead
    return Death(DYING, start, start + DEATH_SECONDS, covered)
