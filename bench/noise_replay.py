"""The monitors of the alert-noise benchmark (bench/alert_noise.py) in virtual time, and what each way
of turning their state changes into pages sends.

`replay` drives, per region and target, the REAL `monitor.detect.Detector` with the results of a
`bench.noise_timeline.Timeline`, as `monitor.schedule` and `monitor.service` drive it (base interval
at a random phase, confirmation probes when the detector asks, the latest request replacing a
pending one and sent once no probe of the target is in flight, hedges past ``hedge_after``, sibling
probes on a failed scheduled probe; a dead monitor's probes lost with it, its detectors restarted
from their open incidents' states), and hands every state change and every heartbeat to the
pipelines:

- `Baseline`: today, each region its own incidents and its own `Grouper`, to `events_for`;
- `Quorum`: the regions' states through `monitor.quorum.verdict` over the alive regions
  (heartbeats, ``detection.heartbeat_timeout``, `monitor.vantage.events` for the loss), a change
  of the global state one transition through one `Grouper` to `events_for`.

Each records its pages (trigger alerts, down or degraded) with the evidence of every target in
them, for the scoring in bench/alert_noise.py. An update of a page still open (action ``update``: a
target of the same provider going down after the page went out, under the page's dedup key) is not
a page: the receiver logs it on the alert it has open, it wakes no one.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bench.detection import FIRST_TOKEN_DEADLINE, T0
from bench.noise_timeline import REGIONS, TARGETS, Timeline
from monitor import quorum as q
from monitor.alerts import events as alert_events
from monitor.alerts.rules import Grouper, events_for
from monitor.config.alerts import AlertsConfig
from monitor.config.detection import DetectionConfig
from monitor.detect import Detector, Transition, observed_status
from monitor.schedule import DEFAULT_MAX_CONCURRENCY, HEDGE_BEFORE_DEADLINE
from probes.result import ProbeResult, Status

try:  # the heartbeat half of issue 15 (monitor/vantage.py): its alert, when it is there
    from monitor import vantage
except ImportError:  # before it lands, losses are counted here alone
    vantage = None

HEDGE_ROOM = DEFAULT_MAX_CONCURRENCY // 4
CHANNEL = "oncall"
PAGE_RULES = ("down", "degraded")


def alerts_config(*, vantage_rule: bool, group_window: float | None = None) -> AlertsConfig:
    """The default rules: down, degraded and recovered to one channel (and vantage_lost there too);
    ``group_window`` unset: its default."""
    kinds = ["down", "degraded", "recovered"] + (["vantage_lost"] if vantage_rule else [])
    extra = {} if group_window is None else {"group_window": group_window}
    return AlertsConfig.model_validate({
        "channels": [{"name": CHANNEL, "type": "webhook", "url_env": "ONCALL_WEBHOOK_URL"}],
        "rules": [{"rule": k, "channels": [CHANNEL]} for k in kinds], **extra,
    })


def _dt(t: float) -> datetime:
    return T0 + timedelta(seconds=t)


def _sec(when: datetime) -> float:
    return (when - T0).total_seconds()


# --- what the pipelines send ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One trigger alert sent: when it went out, and the evidence of each target in it."""

    sent: float
    rule: str
    title: str
    evidence: tuple[tuple[str, str, float, float], ...]  # (target, region or "" for global, since, at)


@dataclass(slots=True)
class _Released:
    """A Grouper and the times its groups come due: `advance` releases them to `events_for`."""

    config: AlertsConfig
    grouper: Grouper = field(init=False)
    due: list[float] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    since: dict[tuple[str, str, datetime], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.grouper = Grouper(window=self.config.group_window, config=self.config)

    def add(self, tr: alert_events.Transition, since: float) -> None:
        self.since[(tr.target, tr.region, tr.at)] = since
        self.grouper.add([tr])
        heapq.heappush(self.due, _sec(tr.at) + self.config.group_window)

    def advance(self, t: float) -> None:
        while self.due and self.due[0] <= t:
            now = heapq.heappop(self.due)
            ready = self.grouper.take(_dt(now))
            if not ready:
                continue
            for event in events_for(ready, config=self.config, now=_dt(now)):
                if event.action == "trigger" and event.rule in PAGE_RULES:
                    evidence = tuple((m.target, m.region, self.since[(m.target, m.region, m.at)], _sec(m.at))
                                     for m in event.members)
                    self.pages.append(Page(now, event.rule, event.title, evidence))


class Baseline:
    """Today: every region its own incidents, its own Grouper, its own pages."""

    label = "baseline (per-region incidents)"

    def __init__(self, *, group_window: float | None = None) -> None:
        self.config = alerts_config(vantage_rule=False, group_window=group_window)
        self.regions = {r: _Released(self.config) for r in REGIONS}
        self.incidents: dict[tuple[str, str], int] = {}
        self._ids = itertools.count(1)
        self.vantage_pages: list[tuple[float, str]] = []  # nothing watches the monitors today

    @property
    def pages(self) -> list[Page]:
        return sorted((p for r in self.regions.values() for p in r.pages), key=lambda p: p.sent)

    def transition(self, region: str, tr: Transition) -> None:
        """As `MonitorService._apply`: open (or worsen) the region's incident, or close it, then hold."""
        key = (tr.target, region)
        if tr.to is Status.UP:
            if key not in self.incidents:
                return
            incident = self.incidents.pop(key)
        else:
            incident = self.incidents.setdefault(key, next(self._ids))
        self.regions[region].add(alert_events.Transition(
            target=tr.target, provider=TARGETS[tr.target], from_state=str(tr.from_), to_state=str(tr.to),
            at=tr.at, incident_id=incident, region=region, cause=dict(tr.cause)), _sec(tr.since))

    def heartbeat(self, region: str, t: float) -> None:
        pass

    def advance(self, t: float) -> None:
        for r in self.regions.values():
            r.advance(t)


class Quorum:
    """Issue 15: the regions' states through `monitor.quorum.verdict`; global transitions alert once."""

    def __init__(self, quorum: int | str, detection: DetectionConfig, *, group_window: float | None = None) -> None:
        self.quorum = quorum
        self.label = f"quorum {quorum} of {len(REGIONS)}"
        self.config = alerts_config(vantage_rule=True, group_window=group_window)
        self.timeout = detection.heartbeat_timeout
        self.out = _Released(self.config)
        self.sightings: dict[str, dict[str, q.Sighting]] = {t: {} for t in TARGETS}
        self.verdicts: dict[str, q.Verdict] = {t: q.NONE for t in TARGETS}
        self.incidents: dict[str, tuple[int, datetime]] = {}
        self._ids = itertools.count(1)
        self.last_seen: dict[str, float] = {}
        self.lost: dict[str, float] = {}  # region -> when its loss was announced
        self.vantage_pages: list[tuple[float, str]] = []
        self.verdict_changes: list[tuple[float, str, str, str]] = []  # (t, target, from, to), for the record

    @property
    def pages(self) -> list[Page]:
        return self.out.pages

    @property
    def alive(self) -> set[str]:
        return {r for r in self.last_seen if r not in self.lost}

    def transition(self, region: str, tr: Transition) -> None:
        self.sightings[tr.target][region] = q.Sighting(region, str(tr.to), tr.since)
        self._judge(tr.target, _sec(tr.at))

    def heartbeat(self, region: str, t: float) -> None:
        """``region`` writes its heartbeat at ``t``, and looks for regions gone silent (as each monitor does)."""
        back = region in self.lost
        self.last_seen[region] = t
        changes = []
        if back:
            lost_at = self.lost.pop(region)
            changes.append(("back", region, lost_at))
        for other, seen in sorted(self.last_seen.items()):
            if other not in self.lost and t - seen > self.timeout:
                self.lost[other] = t
                changes.append(("lost", other, t))
                self.vantage_pages.append((t, other))
        if changes:
            self._vantage_alerts(changes, t)
            for target in TARGETS:
                self._judge(target, t)

    def _vantage_alerts(self, changes: list[tuple[str, str, float]], t: float) -> None:
        """The vantage_lost alerts, from `monitor.vantage.events` when it is there (checked: one page a loss)."""
        if vantage is None:
            return
        events = vantage.events([vantage.Change(region, kind == "lost", _dt(lost_at), _dt(self.last_seen[region]))
                                 for kind, region, lost_at in changes], config=self.config, now=_dt(t))
        lost = sum(kind == "lost" for kind, _, _ in changes)
        triggers = sum(e.action == "trigger" for e in events)
        if triggers != lost:
            raise AssertionError(f"monitor.vantage.events gave {triggers} triggers for {lost} regions lost")

    def _judge(self, target: str, t: float) -> None:
        before = self.verdicts[target]
        now = q.verdict(self.sightings[target].values(), quorum=self.quorum, alive=self.alive)
        self.verdicts[target] = now
        was = before.state if before.scope == "global" else "up"
        to = now.state if now.scope == "global" else "up"
        if was == to:
            return
        self.verdict_changes.append((t, target, was, to))
        at = _dt(t)
        if was == "up":
            self.incidents[target] = (next(self._ids), at)
        incident, opened = self.incidents[target] if to != "up" else self.incidents.pop(target)
        regions = now.regions if to != "up" else before.regions
        # The evidence: from the earliest of the regions behind the verdict's own since, to now.
        since = min((_sec(s.since) for r, s in self.sightings[target].items() if r in regions), default=t)
        self.out.add(alert_events.Transition(
            target=target, provider=TARGETS[target], from_state=was, to_state=to, at=at, incident_id=incident,
            region="", cause={"regions": list(regions)}, opened_at=opened), since)

    def advance(self, t: float) -> None:
        self.out.advance(t)


Pipeline = Baseline | Quorum


# --- the monitors: detectors per region and target, driven as monitor.schedule drives them -------


@dataclass(slots=True)
class _Lane:
    """One target seen from one region: its detector and its scheduler state."""

    detector: Detector
    pending_confirm: float | None = None
    inflight: int = 0
    want_confirm: float | None = None
    state: Status = Status.UP  # its open incident's state (worst reached), for a restart
    epoch: int = 0  # bumped when its monitor dies: results of probes sent before are lost with it


@dataclass(slots=True)
class Replay:
    """What one replay produced: the world, the pipelines fed, probe counts."""

    world: Timeline
    pipelines: list[Pipeline]
    probes: int = 0
    transitions: int = 0
    wall: float = 0.0


def replay(world: Timeline, detection: DetectionConfig, pipelines: list[Pipeline], *, heartbeat_every: float,
           cross_region: float | None = None, corroborate: float | None = None) -> Replay:
    """Feeds every region's probes of every target to its own Detector in virtual time, and each
    transition (and heartbeat) to every pipeline.

    ``cross_region`` (seconds; None: off) is the monitor's cross-region confirmation
    (``detection.cross_region_confirm``, `monitor.service`'s suspects): when a scheduled
    probe of a target fails in one region, and again when that region calls it DOWN, the other
    regions' monitors probe that target that much later (the time for the word to cross the shared
    database), a probe that, failing, nudges its siblings there as a scheduled one does; the second
    word catches a region whose first probe went before the outage reached it. A probe hedged for
    want of a first token (not a confirmation) tells them too: a hang fails only at its first-token
    deadline.

    ``corroborate`` (seconds; None: off) is the monitor's corroboration (``detection.corroborate_after``,
    `monitor.service`'s look at the other regions' sightings while a target here is failing): once
    a region's detector has ``corroborate_after`` failures in a row and another alive region's
    detector calls the target DOWN, `Detector.corroborate` takes it DOWN that much later (the
    look's period: the worst case of its phase)."""
    started = time.perf_counter()
    out = Replay(world, pipelines)
    lanes = {(r, t): _Lane(Detector(detection, t)) for r in REGIONS for t in TARGETS}
    siblings = {t: [o for o, p in TARGETS.items() if p == TARGETS[t] and o != t] for t in TARGETS}
    events: list[tuple[float, int, str, str, str, object]] = []
    ticket = itertools.count()
    for r in REGIONS:
        for t in TARGETS:
            events += [(s, next(ticket), "base", r, t, None) for s in world.base_times(r, t)]
        events += [(s, next(ticket), "heartbeat", r, "", None) for s in world.heartbeat_times(r, heartbeat_every)]
    death = world.death
    if death is not None:
        events += [(death.start, next(ticket), "die", death.region, "", None),
                   (death.end, next(ticket), "restart", death.region, "", None)]
    heapq.heapify(events)
    hedging = dict.fromkeys(REGIONS, 0)
    down_in: dict[str, set[str]] = {t: set() for t in TARGETS}  # the sightings: regions whose detector is DOWN

    def push(at: float, what: str, r: str, t: str, payload: object = None) -> None:
        heapq.heappush(events, (at, next(ticket), what, r, t, payload))

    def confirm_at(r: str, t: str, at: float, what: str = "confirm") -> None:
        lanes[r, t].pending_confirm = at
        push(at, what, r, t)

    def nudge(r: str, t: str, at: float, what: str = "sibling") -> None:
        """`Scheduler.nudge`: probe now unless DOWN, probing, or a confirmation is coming."""
        lane = lanes[r, t]
        if lane.detector.state is not Status.DOWN and lane.inflight == 0 and lane.pending_confirm is None:
            confirm_at(r, t, at, what)

    def tell_regions(r: str, t: str, now: float) -> None:
        """The proposal: the other regions probe ``t`` soon (a failure there nudges its siblings)."""
        if cross_region is None:
            return
        for region in REGIONS:
            if region != r and world.alive(region, now + cross_region):
                push(now + cross_region, "tell", region, t)

    def corroborating(r: str, t: str, now: float) -> list[str]:
        """The other alive regions calling ``t`` DOWN, when corroboration is on."""
        if corroborate is None:
            return []
        return sorted(x for x in down_in[t] if x != r and world.alive(x, now))

    def announce(r: str, t: str, lane: _Lane, tr: Transition, now: float) -> None:
        """A state change of ``t`` in ``r``: the other regions told, the pipelines fed."""
        if tr.to is Status.DOWN:
            tell_regions(r, t, now)
            down_in[t].add(r)
            for region in REGIONS:
                if region != r and corroborate is not None:
                    push(now + corroborate, "corroborate?", region, t)
        else:
            down_in[t].discard(r)
        out.transitions += 1
        if tr.to is Status.UP:
            lane.state = Status.UP
        elif lane.state is not Status.DOWN:  # an incident records the worst state it reached
            lane.state = tr.to
        for p in pipelines:
            p.transition(r, tr)

    def handle(r: str, t: str, lane: _Lane, result: ProbeResult, what: str, now: float) -> None:
        """`MonitorService._handle` and the scheduler's confirmation bookkeeping, for one result."""
        was = lane.detector.state
        decision = lane.detector.feed(result, confirm=what not in ("end:base", "end:sibling", "end:remote"))
        lane.want_confirm = decision.confirm_in  # the latest result's word replaces the earlier ones'
        if lane.inflight == 0 and lane.want_confirm is not None:
            confirm_at(r, t, now + lane.want_confirm)
            lane.want_confirm = None
        if what in ("end:base", "end:remote") and observed_status(result) is Status.DOWN and was is not Status.DOWN:
            for other in siblings[t]:
                nudge(r, other, now)
            if what == "end:base":
                tell_regions(r, t, now)
        tr = decision.transition
        if tr is None:
            need = detection.corroboration_run
            if need is not None and lane.detector.failing() >= need and corroborating(r, t, now):
                push(now + (corroborate or 0.0), "corroborate?", r, t)
            return
        announce(r, t, lane, tr, now)

    while events:
        now, _, what, r, t, payload = heapq.heappop(events)
        for p in pipelines:
            p.advance(now)
        if what == "heartbeat":
            for p in pipelines:
                p.heartbeat(r, now)
            continue
        if what == "die":  # probes in flight die with it, confirmations wanted are forgotten
            for (region, _), lane in lanes.items():
                if region == r:
                    lane.epoch += 1
                    lane.pending_confirm, lane.want_confirm, lane.inflight = None, None, 0
            hedging[r] = 0
            continue
        if what == "restart":  # each detector from its open incident, as MonitorService._run
            for (region, target), lane in lanes.items():
                if region == r:
                    lane.detector = Detector(detection, target, state=lane.state)
                    (down_in[target].add if lane.state is Status.DOWN else down_in[target].discard)(r)
            continue
        if not world.alive(r, now) and not what.startswith("end:"):
            continue
        lane = lanes[r, t]
        if what == "tell":
            nudge(r, t, now, "remote")
            continue
        if what == "corroborate?":
            others = corroborating(r, t, now)
            decision = lane.detector.corroborate(at=_dt(now), regions=others) if others else None
            if decision is not None and decision.transition is not None:
                announce(r, t, lane, decision.transition, now)
            continue
        if what == "hedge?":
            begun, confirming, epoch = payload
            if epoch != lane.epoch:
                continue
            hedges = lane.detector.hedges(at=_dt(begun), confirm=confirming)
            if hedges > 0 and not confirming:  # `MonitorService._hedges`: a hang's first news
                tell_regions(r, t, now)
            wanted = hedges - (lane.inflight - 1)
            for k in range(max(0, min(wanted, HEDGE_ROOM - hedging[r]))):
                lane.inflight += 1
                hedging[r] += 1
                push(now + 0.001 * k, "hedge", r, t)  # 1 ms apart: each its own outcome
            continue
        if what in ("base", "confirm", "hedge", "sibling", "remote"):
            if what in ("confirm", "sibling", "remote"):
                if lane.pending_confirm != now:
                    continue  # replaced by a later request
                lane.pending_confirm = None
            out.probes += 1
            lane.inflight += what != "hedge"
            result = world.probe(r, t, now)
            end = now + (result.total_ms or 0) / 1000
            push(end, "end:" + what, r, t, (result, lane.epoch))
            after = lane.detector.hedge_after()
            after = None if after is None else min(after, HEDGE_BEFORE_DEADLINE * FIRST_TOKEN_DEADLINE)
            if after is not None and (result.ttft_ms is None or result.ttft_ms > after * 1000) and end > now + after:
                push(now + after, "hedge?", r, t, (now, what not in ("base", "sibling", "remote"), lane.epoch))
            continue
        result, epoch = payload
        if epoch != lane.epoch:
            continue  # sent before its monitor died: nobody is there to read it
        lane.inflight -= 1
        hedging[r] -= what == "end:hedge"
        handle(r, t, lane, result, what, now)
    for p in pipelines:
        p.advance(math.inf)
    out.wall = time.perf_counter() - started
    return out
