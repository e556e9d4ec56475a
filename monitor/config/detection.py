"""The ``detection`` section of `airisk.yaml`: when a target counts as DEGRADED or DOWN.

```yaml
detection:
  failure_threshold: 5          # consecutive failed probes (confirmations included) -> DOWN
  success_threshold: 2          # consecutive good probes -> out of DOWN
  confirm_after: [1s, 1s, 2s, 2s]  # extra probes after a failure, each this long after the previous one
  hedge_after: 5s               # a probe with no first token this long: its confirmations go alongside
  probe_siblings: true          # a failure probes the same endpoint's other targets at once
  cross_region_confirm: true    # (several regions) a failure here has the other regions probe it at once
  corroborate_after: 4          # (several regions) failed probes in a row -> DOWN once another region is DOWN
  degraded_ttft_ms: 4000        # the window's median time to first token above this -> DEGRADED
  window: 20                    # recent results judged together
  degraded_error_rate: 0.3      # failed share of a full window at or above this -> DEGRADED
  maintenance:
    - {start: 2025-03-01T02:00:00Z, end: 2025-03-01T04:00:00Z, targets: [openai], reason: vendor upgrade}
```

`monitor.detect.Detector` applies it; why each default is what it is, with the figures,
is in ``bench/detection.py`` and docs/BENCHMARKS.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from annotated_types import Ge, Gt, Interval, Le, MaxLen, MinLen
from pydantic import AfterValidator, Field, ValidationError, WrapValidator, model_validator

from monitor.config.base import Loc, Section, Text
from monitor.durations import Duration


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone, e.g. 2025-03-01T02:00:00Z or 2025-03-01T03:00:00+01:00")
    return value.astimezone(UTC)


AwareTime = Annotated[datetime, AfterValidator(_aware)]


def _quorum(value: object, handler) -> object:
    # One message for the union: pydantic would give one line per member ("should be a valid
    # integer", "should be 'majority'"), neither of which says what is wanted.
    try:
        if isinstance(value, bool):  # YAML's yes/true is no number of regions (pydantic would take it as 1)
            raise ValueError("a boolean")
        return handler(value)
    except (ValidationError, ValueError):
        raise ValueError(f"must be a number of regions from 1 to 100, or \"majority\"; got {value!r}") from None


Quorum = Annotated[Annotated[int, Interval(ge=1, le=100)] | Literal["majority"], WrapValidator(_quorum)]
Millis = Annotated[float, Gt(0), Field(allow_inf_nan=False)]
Rate = Annotated[float, Gt(0), Le(1)]


class MaintenanceWindow(Section):
    """A planned window, one-off, between two absolute times.

    Inside it the state is still tracked but no transition is announced (no alert); if the
    state at the end differs from the one announced before, that change is announced with the
    first result after the window. Recurring windows are not supported: write each one.
    """

    start: AwareTime
    """When it begins, with a time zone (stored as UTC)."""
    end: AwareTime
    """When it ends (exclusive), with a time zone."""
    targets: Annotated[list[Text], MinLen(1)] | None = None
    """Only these targets (by name); unset: every target."""
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end ({_iso(self.end)}) must be after start ({_iso(self.start)})")
        return self

    def covers(self, target: str, at: datetime) -> bool:
        """Whether a probe of ``target`` started at ``at`` falls inside this window."""
        return self.start <= at < self.end and (self.targets is None or target in self.targets)


class DetectionConfig(Section):
    """Thresholds of the per-target state machine (UP, DEGRADED, DOWN)."""

    # Why 5 (bench/detection.py): if 2% of probes fail at random, 2 in a row page about every
    # 40 target-hours, 3 every ~2,000, 4 every ~100,000 (the benchmark met one in 6,000 hours),
    # 5 every ~5 million; each step costs one confirmation probe and ~1.5 s.
    failure_threshold: Annotated[int, Interval(ge=1, le=20)] = 5
    success_threshold: Annotated[int, Interval(ge=1, le=20)] = 2
    """Consecutive good results before a target leaves DOWN (or DEGRADED). It doubles, up to
    ``window``, each time a target falls DOWN again soon after recovering (a flapping target
    must prove itself for longer)."""
    # Short, so an outage is DOWN ~10 s after its first failed probe; spread over 6 s, so a blip of a
    # second or two (a connection reset, a load balancer flip) cannot page on its own.
    confirm_after: Annotated[list[Duration], MaxLen(10)] = Field(default_factory=lambda: [1.0, 1.0, 2.0, 2.0])
    """Extra probes sent after a failure (or a first good result while DOWN), each this long after
    the previous result, so an outage is confirmed in seconds instead of intervals; empty: none."""
    # A hanging provider fails each probe only at its first-token deadline (20 s by default), so
    # confirming one probe after another costs failure_threshold deadlines (~100 s). 5 s is ~10x
    # a healthy hosted model's first token and 15 s short of the deadline: the benchmark's 4-15x
    # latency spikes trip it about once an hour, for four extra probes that answer.
    hedge_after: Duration | None = 5.0
    """A probe still without a first token this long after it started has the confirmation probes
    a DOWN would need sent alongside it at once (at most ``confirm_after``'s count), so a hanging
    provider is confirmed one first-token deadline after the first probe; unset: never. A target
    whose usual first token is slow is hedged later (`monitor.detect.HEDGE_FACTOR` times its
    median, but never later than 3/4 of its first-token deadline). Local models are never
    hedged: their server answers one request at a time, so extra probes would queue behind the
    slow one."""
    # One look at a provider per target per interval: with several targets on one endpoint (a chat
    # model, a small model, embeddings), the first of them to fail is news for all of them.
    probe_siblings: bool = True
    """When a scheduled probe fails on a target that is not DOWN, the other targets of the same
    provider and base URL that are not DOWN (and have no probe under way or coming) are probed at
    once, as confirmations: an outage of the endpoint takes them all DOWN together, one page,
    instead of each at its own next interval. Local models are left out."""
    degraded_ttft_ms: Millis | None = None
    """The window's median time to first token above this (ms) -> DEGRADED; unset: not judged."""
    degraded_total_ms: Millis | None = None
    """The window's median total time above this (ms) -> DEGRADED; unset: not judged."""
    # 20, not 10: at 2% random failures, 3 of 10 happen by chance (a DEGRADED notice every ~80
    # target-hours in the benchmark); 6 of 20 practically never do.
    window: Annotated[int, Interval(ge=2, le=1000)] = 20
    """How many recent results the error rate and the latency medians are taken over."""
    degraded_error_rate: Rate = 0.3
    """Share of failed results in a full window at or above which a target is DEGRADED."""
    recover_error_rate: Annotated[float, Ge(0), Le(1)] | None = None
    """A target DEGRADED by its error rate is UP again only at or below this (hysteresis, so a
    rate hovering at the limit does not flap); unset: half of degraded_error_rate."""
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    """Planned windows: state tracked, no alerts."""
    quorum: Quorum = 1
    """With several monitors (``airisk monitor --region``) on one database: how many regions must
    see a target DOWN (or DEGRADED) before the incident is global and pages; "majority": more than
    half of the regions whose monitor is alive. A target seen DOWN from fewer is a regional
    incident (on the dashboard; alerted only by rules with ``regional: true``). Only alive regions
    count, and a number above the alive regions asks all of them (`monitor.quorum`): a dead
    monitor can neither page nor keep a real outage from paging. The global incident resolves
    when the quorum no longer holds."""
    # The alert-noise bench (bench/noise_replay.py --cross-region): with quorum 2 of 3 the page went
    # out 11.8 s later than with one region at the median, nearly all of it waiting for the second
    # region's next scheduled probe; confirming across regions cut that to +2.1 s for ~4% more probes.
    cross_region_confirm: bool = True
    """With several monitors on one database: when a region's scheduled probe of a target fails (or
    the target goes DOWN there), the other alive regions probe that target at once, as
    ``probe_siblings`` does within one region, so the quorum forms in seconds rather than at the
    other regions' next interval. Not where the target is DOWN already or in a maintenance window.
    Costs nothing with a single monitor (nothing is written or read while no other region is
    alive)."""
    # The alert-noise bench (bench/alert_noise.py, 5 simulated months): with cross-region confirmation
    # alone the quorum's page went out +2.1 s after a single region's at the median, the second region's
    # own confirmation finishing after the first's; with corroboration +0.5 s. 4, not 3: with 3 (+0.2 s)
    # one of 27 regional outages paged, a region's random failures (2%) happening to run 3 long while
    # another region was DOWN; 4 in a row start once in ~6 million probes.
    corroborate_after: Annotated[int, Interval(ge=1, le=20)] | None = 4
    """With several monitors on one database: a target that another alive region calls DOWN is
    DOWN here after this many failed probes in a row instead of ``failure_threshold`` (the other
    region's full run already ruled out a blip; this region only has to show it sees the failure
    too), so a quorum of two pages when the second region corroborates, not when it has confirmed
    all over again. Unset: every region confirms on its own. Set, not above ``failure_threshold``
    (the default is capped at it)."""
    heartbeat_timeout: Duration = 180.0
    """A monitor whose heartbeat is older than this is lost: a vantage_lost alert, and its region
    stops counting towards the quorum. Keep it a few ``alerts.heartbeat_every`` long, so one late
    heartbeat (a database hiccup, a busy machine) is not a loss."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = []
        if self.window < self.failure_threshold:
            problems.append(f"window ({self.window}) must be at least failure_threshold "
                            f"({self.failure_threshold}): the window holds the failures it judges")
        if ("corroborate_after" in self.model_fields_set and self.corroborate_after is not None
                and self.corroborate_after > self.failure_threshold):
            problems.append(f"corroborate_after ({self.corroborate_after}) must not be above failure_threshold "
                            f"({self.failure_threshold}): it is the shorter run a region needs once another "
                            "calls the target DOWN")
        if self.recover_error_rate is not None and self.recover_error_rate >= self.degraded_error_rate:
            problems.append(f"recover_error_rate ({self.recover_error_rate:g}) must be below "
                            f"degraded_error_rate ({self.degraded_error_rate:g})")
        ttft, total = self.degraded_ttft_ms, self.degraded_total_ms
        if ttft is not None and total is not None and ttft > total:
            problems.append(f"degraded_ttft_ms ({self.degraded_ttft_ms:g}) must not be above degraded_total_ms "
                            f"({self.degraded_total_ms:g}): the first token never comes after the end")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def corroboration_run(self) -> int | None:
        """The failures in a row that corroborate another region's DOWN: ``corroborate_after``,
        capped at ``failure_threshold`` (None: off)."""
        need = self.corroborate_after
        return None if need is None else min(need, self.failure_threshold)

    @property
    def recover_rate(self) -> float:
        """The error rate a target DEGRADED by its error rate must fall to (or below) to be UP again."""
        return self.degraded_error_rate / 2 if self.recover_error_rate is None else self.recover_error_rate

    def maintenance_for(self, target: str, at: datetime) -> MaintenanceWindow | None:
        """The first maintenance window covering a probe of ``target`` started at ``at``, if any."""
        return next((m for m in self.maintenance if m.covers(target, at)), None)

    def target_problems(self, names: set[str], loc: Loc = ("detection",)) -> list[tuple[Loc, str]]:
        """Maintenance windows naming a target the file does not define (a cross-section check
        for the loader: ``names`` are the configured target names)."""
        problems: list[tuple[Loc, str]] = []
        for i, window in enumerate(self.maintenance):
            for j, name in enumerate(window.targets or ()):
                if name not in names:
                    known = ", ".join(sorted(names)) or "none"
                    problems.append(((*loc, "maintenance", i, "targets", j),
                                     f"no target is named {name!r} (targets: {known})"))
        return problems


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
