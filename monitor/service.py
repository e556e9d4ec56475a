"""`airisk monitor`: probes on schedule -> detection -> incidents -> alerts, all stored.

Wiring only; each part lives in its own module:

    schedule.Scheduler -- probe --> _handle --> store.buffer.ResultWriter (raw rows, rollups)
                                       |------> detect.Detector --transition--> _apply (incident
                                       |         + alerts.rules.Grouper) --> alerts.outbox
                                       |------> a scheduled probe failed: Scheduler.nudge its
                                       |         siblings (same provider and base URL)
                                       '------> metrics.Metrics (last: a figure it cannot take
                                                 is logged, never kept from the detector)
    alerts.dispatch.Dispatcher <-- outbox rows (FOR UPDATE SKIP LOCKED on PostgreSQL)
    _vendor_loop: status pages -> status snapshots, lead time of open incidents
    _vantage_loop: this monitor's heartbeat, regions lost or back, the quorum re-judged,
                   the dead man's switch (alerts.heartbeat_url)
    _housekeeping: other regions' suspicions (Scheduler.nudge), held alert groups, reminders,
                   retention

Several vantage points, one voice (`monitor.quorum`, `monitor.vantage`): each monitor records its
own view of a target (a regional incident, and a sighting: its current state), then, under one
database-wide lock (`lock_quorum`), judges every alive region's sightings together and opens,
worsens or closes the target's one global incident. The monitor whose transaction made that
change is the one that announces it, so an outage every region sees pages once; the outbox's
deterministic event keys are the second guard. Regional incidents alert only rules with
``regional: true``. The quorum is judged again at each heartbeat, so a region lost or back
moves the verdict even when no state changes; and a global incident whose opener stopped before
its page went out is paged by another monitor (`MonitorService._unannounced`).

Cross-region confirmation (``detection.cross_region_confirm``): a quorum of two waits for the
second region to see the outage, and that region would see it only at its next scheduled probe
(the alert-noise bench: +11.8 s to the page at the median, +2.1 s with this). So when a scheduled
probe fails here, or a target goes DOWN here, this monitor writes a suspicion (`SuspectRow`: target,
region, time) on its database thread; each monitor reads the other regions' fresh suspicions on its
housekeeping tick (one query on an index, only rows newer than its last look) and probes those
targets at once, as it does a failing target's siblings, unless the target is DOWN here already or
in maintenance. Each suspicion nudges a target once at most. While no other region is alive
(`monitor.vantage`, as of the last heartbeat) nothing is written or read: a lone monitor pays nothing.

Corroboration (``detection.corroborate_after``): even nudged at once, the second region finishes
its own run of ``failure_threshold`` failures after the first region's, and the page waits for it
(the bench: still +2.1 s). So while a target here has failed ``corroborate_after`` probes in a row
and is not DOWN, this monitor looks every `CORROBORATE_EVERY` at the other alive regions'
sightings of it, and when one calls it DOWN, `Detector.corroborate` takes it DOWN here too: the
quorum forms a fraction of a second after the first region's DOWN. No target failing here: no
query.

Transitions that cannot reach the database (it is down) are held in memory and applied when
it returns, as results are by the `ResultWriter`: nothing is lost while the process lives.
The background loops never end on an error: a database away, a status page no parser expected
or a bug is logged (at once, then at most every 30 s while it repeats) and the loop goes on.
After a restart, each detector starts from its target's open incident, so a restart neither
re-alerts an outage nor forgets one.

All of the monitor's database work (the writer's batches, incidents, alert queueing, status
snapshots, retention, the dispatcher's outbox) runs on one thread of its own. Spread over
asyncio's default pool (up to six threads on two cores) it kept five SQLite connections open,
each with its own page cache and prepared statements, each cache emptied whenever another
connection wrote (WAL), all of it allocated in whichever thread's malloc arena ran it. Under the
soak (bench/soak_trace.py --no-trace) those arenas' RSS grew 9.9 -> 13.2 MiB from minute 5 to 23
while the bytes malloc had in use grew 2 MiB (SQLite's 1.4 of them): fragmentation, which
malloc_trim cannot return. On one thread: one connection, one cache, one arena (flat at 5.0 MiB
for the whole soak); on SQLite every write waited for the one write lock anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any, TypeVar

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from monitor import quorum, vantage
from monitor.alerts import events as alert_events
from monitor.alerts.burn import feature_slo_events
from monitor.alerts.dispatch import Dispatcher
from monitor.alerts.impact import impact_source
from monitor.alerts.outbox import enqueue
from monitor.alerts.redact import protect
from monitor.alerts.rules import Grouper, events_for, reminders
from monitor.alerts.slo import Availability, slo_events
from monitor.config import AiriskConfig
from monitor.config.alerts import AlertsConfig
from monitor.config.detection import DetectionConfig
from monitor.detect import Detector, Transition
from monitor.lifecycle import LifecycleWatcher
from monitor.memory import release_freed_memory
from monitor.metrics import Metrics
from monitor.schedule import Scheduler, Watch
from monitor.statuspoll import VendorStatus, fetch_status, lead_time, summary_url
from monitor.store import ResultWriter, migrate
from monitor.store.incidents import (
    apply_verdict,
    close_incident,
    down_elsewhere,
    lock_quorum,
    open_incident,
    open_incident_for,
    record_sighting,
    record_status,
    record_suspect,
    set_vendor_post,
    sightings,
    suspects_since,
)
from monitor.store.models import AlertOutbox, IncidentRow
from monitor.store.queries import target_summary
from monitor.store.results import prune, upsert_targets
from probes import Status, Target, make_client
from probes.result import ProbeResult

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# A suspicion is committed a little after the probe it stamps ended (its handling, the database
# thread's queue) and stamped by another host's clock: each look reads back this far before the
# last one, and remembers what it acted on, so a late commit is not missed and nothing nudges twice.
# (A host whose clock is further behind than this loses only the speed-up: its regions' peers still
# probe on their schedule.)
SUSPECT_LOOKBACK = timedelta(seconds=5)

# How often the other regions' sightings are read while a target here is failing (corroboration,
# module docstring): the quorum's page waits up to this long after the first region's DOWN.
CORROBORATE_EVERY = 0.25


@dataclass(frozen=True, slots=True)
class RegionalTransition(alert_events.Transition):
    """A transition of one region's own incident: alerted only by rules with ``regional: true``
    (a plain `Transition` from this module is one of a global incident)."""


class _Repeating:
    """A warning that would repeat every tick while the database is away: said at once, then at
    most every ``every`` seconds (not ~600 lines a minute)."""

    def __init__(self, every: float = 30.0) -> None:
        self.every = every
        self.since: float | None = None  # monotonic time it first failed
        self.said = 0.0

    def failed(self) -> bool:
        """It failed (again); True when the warning is to be said now."""
        now = time.monotonic()
        say = self.since is None or now - self.said >= self.every
        self.since = now if self.since is None else self.since
        self.said = now if say else self.said
        return say

    def ok(self) -> float | None:
        """It worked: seconds since it first failed if it had, else None."""
        since, self.since = self.since, None
        return None if since is None else time.monotonic() - since


def _siblings(targets: Iterable[Target]) -> dict[str, list[str]]:
    """For each target, the others on the same provider and base URL (local models apart: one
    server, one model, and probes sent alongside would only queue)."""
    by_endpoint: dict[tuple[str, str], list[str]] = {}
    for t in targets:
        if not t.local:
            by_endpoint.setdefault((t.provider, t.base_url.rstrip("/")), []).append(t.name)
    return {name: [o for o in names if o != name] for names in by_endpoint.values() if len(names) > 1
            for name in names}


@dataclass
class _Held:
    target: Target
    transition: Transition
    attempts: int = 0
    formed: bool = False  # not a change: this region's first settled view of the target since it started


@dataclass
class MonitorService:
    config: AiriskConfig
    engine: Engine
    region: str = ""
    metrics: Metrics = field(default_factory=Metrics)
    status_interval: float = 60.0
    housekeeping_interval: float = 1.0
    slo_interval: float = 60.0
    reminder_check: float = 30.0  # how often open incidents are looked at for reminders, at most
    release_memory_every: timedelta = timedelta(minutes=1)  # freed memory back to the OS (monitor/memory.py)
    seed: int | None = None

    def __post_init__(self) -> None:
        self.detection: DetectionConfig = self.config.detection
        self.alerts: AlertsConfig = self.config.alerts or AlertsConfig()
        self.schedule = self.config.resolve_schedule()
        self.targets = {t.name: t for t, _ in self.schedule}
        self.siblings = _siblings(self.targets.values()) if self.detection.probe_siblings else {}
        self.detectors: dict[str, Detector] = {}
        # With the rules, so a transition no rule routes (or in maintenance) opens no page of its own.
        self.grouper = Grouper(window=self.alerts.group_window, config=self.alerts)
        self._regional_alerts = self.alerts.model_copy(update={"rules": [
            r for r in self.alerts.rules if r.regional and r.rule in ("down", "degraded", "recovered")]})
        self.started_at = datetime.now(UTC)
        self._vendor_seen: set[tuple[str, str, str]] = set()
        self._formed: set[str] = set()  # targets this monitor has judged since it started
        # Open global incidents: when this monitor first saw each, None once known paged (_unannounced).
        self._open_seen: dict[int, datetime | None] = {}
        self._last_beat: datetime | None = None  # this monitor's last heartbeat written
        self._beating_since: datetime | None = None  # ...and since when without a gap
        self._vantage_warning = _Repeating()
        if self.alerts.heartbeat_url:
            protect([self.alerts.heartbeat_url])  # a ping URL is a secret: never in a log line
        self._held: list[_Held] = []
        self._held_warning = _Repeating()
        self._housekeeping_warning = _Repeating()
        self._vendor_warning = _Repeating()
        self._page_warnings: dict[str, _Repeating] = {}
        self._metrics_warning = _Repeating()
        self.writer: ResultWriter | None = None
        self.scheduler: Scheduler | None = None
        self.started = asyncio.Event()
        self._slo_rules = [rule for rule in self.alerts.rules if rule.rule == "slo_burn"]
        self._slo_checked = datetime.min.replace(tzinfo=UTC)
        self._reminders_checked = datetime.min.replace(tzinfo=UTC)
        self._burning: dict = {}
        # feature_slo: multi-window burn rates of each feature's own SLO (monitor/alerts/burn.py)
        self._feature_slo = (any(r.rule == "feature_slo" for r in self.alerts.rules)
                             and any(f.slo for f in self.config.features.values()))
        self._feature_burning: dict = {}
        self._db: ThreadPoolExecutor | None = None  # the database thread, while `run` runs
        # Cross-region confirmation (module docstring): whether another region was alive at the last
        # heartbeat, when the others' suspicions were last read, and the ones already acted on.
        self._others_alive = False
        self._suspects_read: datetime | None = None
        self._suspects_seen: set[tuple[str, str, datetime]] = set()
        self._suspect_warning = _Repeating()
        self._corroborate_warning = _Repeating()
        self._tasks: set[asyncio.Task] = set()  # suspicions written off the scheduler's path

    async def _in_db(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` on the database thread (module docstring); outside `run`, any worker thread."""
        if self._db is None:
            return await asyncio.to_thread(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._db, partial(fn, *args))

    # -- start-up ---------------------------------------------------------------------------
    def _prepare(self) -> dict[str, IncidentRow]:
        migrate(self.engine)
        with Session(self.engine) as session:
            upsert_targets(session=session, targets=list(self.targets.values()))
            open_rows = {
                row.target: row for row in session.exec(
                    select(IncidentRow).where(IncidentRow.closed_at.is_(None), IncidentRow.region == self.region,
                                              IncidentRow.scope == "regional"))
            }
            # The pages still open (one per provider's outage) after a restart: a target of the same outage
            # falling DOWN now is an update of that page, not a page of its own.
            self.grouper.resume(list(session.exec(select(IncidentRow).where(IncidentRow.closed_at.is_(None),
                                                                            IncidentRow.scope == "global"))))
            session.commit()
        # The first heartbeat before the first probe: the other monitors count this region at once.
        self.grouper.add(self._heartbeat(datetime.now(UTC)))
        return open_rows

    async def run(self, stop: asyncio.Event, *, client: httpx.AsyncClient | None = None) -> None:
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airisk-db")
        try:
            await self._run(stop, client)
        finally:
            db, self._db = self._db, None
            # Work of a cancelled loop may still be running there: waited for (off the event loop),
            # so the caller may dispose of the engine once this returns.
            await asyncio.to_thread(db.shutdown)

    async def _run(self, stop: asyncio.Event, client: httpx.AsyncClient | None) -> None:
        open_rows = await self._in_db(self._prepare)
        for name in self.targets:
            state = Status(open_rows[name].state) if name in open_rows else Status.UP
            self.detectors[name] = Detector(self.detection, name, state=state)
            self.metrics.set_state(target=name, provider=self.targets[name].provider, region=self.region,
                                   state=str(state))
        own_client = client is None
        client = client or make_client()
        self.writer = ResultWriter(self.engine, region=self.region, executor=self._db)
        self.writer.start()
        scheduler = self.scheduler = Scheduler(watches=[Watch(t, interval) for t, interval in self.schedule],
                                               client=client, handle=self._handle, seed=self.seed,
                                               hedge_after=lambda w: self.detectors[w.target.name].hedge_after(),
                                               hedges=self._hedges)
        loops = [asyncio.create_task(self._housekeeping(stop)), asyncio.create_task(self._vendor_loop(stop, client)),
                 asyncio.create_task(self._vantage_loop(stop, client)),
                 asyncio.create_task(self._corroboration_loop(stop))]
        if self.alerts.channels:
            dispatcher = Dispatcher(self.engine, self.alerts, client, executor=self._db)
            loops.append(asyncio.create_task(dispatcher.run_forever(stop)))
        # Model listings (retirements, models gone): returns at once with lifecycle.enabled false.
        loops.append(asyncio.create_task(LifecycleWatcher(self.config, self.engine, client, self._db).run(stop)))
        scheduler.start()
        self.started.set()
        try:
            await stop.wait()
        finally:
            await scheduler.stop()
            await self._apply_held(force=True)
            await self.writer.close()
            for task in (*loops, *self._tasks):  # the hedges' suspicions too: none writes after `run`
                task.cancel()
            await asyncio.gather(*loops, *self._tasks, return_exceptions=True)
            if own_client:
                await client.aclose()

    # -- every result -------------------------------------------------------------------------
    async def _handle(self, watch: Watch, result: ProbeResult, confirm: bool, sibling: bool) -> float | None:
        """One result. A sibling probe is stored off schedule, as confirmations are (no availability
        or latency figure counts it: it went because something failed), but to the detector it opens
        the target's own run of confirmations, as a scheduled probe would."""
        assert self.writer is not None
        self.writer.submit(result, confirm=confirm or sibling)
        detector = self.detectors[watch.target.name]
        was = detector.state  # (a failure that itself makes it DOWN is news for the siblings too)
        decision = detector.feed(result, confirm=confirm)
        self._observe(watch.target, result, str(decision.state))
        failed = (not (confirm or sibling) and decision.observed is Status.DOWN and was is not Status.DOWN
                  and not decision.in_maintenance)
        if failed:
            self._probe_siblings(watch.target.name, result.at)
        name = watch.target.name
        gone_down = decision.transition is not None and decision.transition.to is Status.DOWN
        if (failed or (gone_down and not decision.in_maintenance)) and self._confirming_across_regions():
            await self._suspect(name, result.at)
        if decision.transition is not None:
            self._formed.add(name)
            self._held.append(_Held(watch.target, decision.transition))
            await self._apply_held()
        elif name not in self._formed and decision.confirm_in is None:
            # The first judgement since start has settled (no confirmation under way): from now on
            # this region counts towards the target's quorum (see monitor.vantage).
            self._formed.add(name)
            state = decision.state
            self._held.append(_Held(watch.target, Transition(name, state, state, result.at, result.at), formed=True))
            await self._apply_held()
        return decision.confirm_in

    def _hedges(self, watch: Watch, started: datetime, confirm: bool) -> int:
        """The scheduler asks how many confirmations to send alongside a probe with no first token
        yet (`Detector.hedges`). Such a probe is the first news of a hang, which fails only at the
        first-token deadline (20 s by default): a scheduled or nudged one (not a confirmation) is a
        suspicion for the other regions now, not 20 s later (the alert-noise bench: the hanging
        outages' quorum page +20 s after one region's, the deadline, without it)."""
        name = watch.target.name
        wanted = self.detectors[name].hedges(at=started, confirm=confirm)
        if wanted > 0 and not confirm and self._confirming_across_regions():
            task = asyncio.ensure_future(self._suspect(name, datetime.now(UTC)))  # read "since the last look"
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return wanted

    def _observe(self, target: Target, result: ProbeResult, state: str) -> None:
        """The metrics, after detection: a figure Prometheus refuses (a provider's negative token
        count making a negative cost, say) costs a scrape its sample, never the detector its result."""
        try:
            self.metrics.observe(result, region=self.region)
            self.metrics.set_state(target=target.name, provider=target.provider, region=self.region, state=state)
        except Exception as exc:
            if self._metrics_warning.failed():
                log.warning("metrics not updated for %s: %s", target.name, _one_line(exc))

    def _probe_siblings(self, name: str, at: datetime) -> None:
        """A scheduled probe of ``name`` failed: its endpoint's other targets are probed now rather
        than at their next interval (``detection.probe_siblings``); not those DOWN already or in a
        maintenance window (no confirmations there)."""
        assert self.scheduler is not None
        sent = [other for other in self.siblings.get(name, ())
                if self.detectors[other].state is not Status.DOWN
                and not self.detection.maintenance_for(other, at) and self.scheduler.nudge(other)]
        if sent:
            log.info("%s failed: probing %s on the same endpoint now", name, ", ".join(sent))

    # -- cross-region confirmation (module docstring) ---------------------------------------------
    def _confirming_across_regions(self) -> bool:
        return self.detection.cross_region_confirm and self._others_alive

    async def _suspect(self, name: str, at: datetime) -> None:
        """Tells the other regions that ``name`` may be failing here. A database away costs only the
        speed-up (the regions still probe on schedule): said, never raised into the detector's path."""
        try:
            await self._in_db(self._write_suspect, name, at)
        except SQLAlchemyError as exc:
            if self._suspect_warning.failed():
                log.warning("other regions not asked to confirm %s, database unavailable: %s", name,
                            exc.__class__.__name__)
        except Exception as exc:  # a bug: the result's handling goes on
            if self._suspect_warning.failed():
                log.error("other regions not asked to confirm %s: %s", name, _one_line(exc), exc_info=exc)
        else:
            self._suspect_warning.ok()

    def _write_suspect(self, name: str, at: datetime) -> None:
        with Session(self.engine) as session:
            record_suspect(session=session, target=name, region=self.region, at=at)
            session.commit()

    def _read_suspects(self, since: datetime) -> list[tuple[str, str, datetime]]:
        with Session(self.engine) as session:
            return suspects_since(session=session, since=since, region=self.region)

    async def _confirm_suspects(self, now: datetime) -> list[str]:
        """Probes now the targets another alive region suspects (written since the last look) that
        are not DOWN here and not in maintenance; returns those nudged. Nothing is read while no
        other region is alive, and the look starts afresh when one is."""
        if not self._confirming_across_regions() or self.scheduler is None:
            self._suspects_read, self._suspects_seen = None, set()
            return []
        since = (self._suspects_read or now) - SUSPECT_LOOKBACK
        rows = await self._in_db(self._read_suspects, since)
        self._suspects_read = now
        self._suspects_seen = {key for key in self._suspects_seen if key[2] > since}  # older ones cannot return
        sent: dict[str, list[str]] = {}
        for key in rows:
            if key in self._suspects_seen:
                continue
            self._suspects_seen.add(key)
            name, region, _ = key
            if (name in self.targets and self.detectors[name].state is not Status.DOWN
                    and not self.detection.maintenance_for(name, now) and self.scheduler.nudge(name)):
                sent.setdefault(name, []).append(region)
        for name, regions in sent.items():
            log.info("%s failing from %s: probing it from here now", name,
                     ", ".join(vantage.label(r) for r in regions),
                     extra={"event": "cross_region_confirm", "target": name, "region": self.region,
                            "suspected_by": regions})
        return list(sent)

    async def _corroboration_loop(self, stop: asyncio.Event) -> None:
        """`_corroborate` every `CORROBORATE_EVERY` s; a database away costs only the speed-up."""
        while not stop.is_set():
            try:
                await self._corroborate(datetime.now(UTC))
            except SQLAlchemyError as exc:
                if self._corroborate_warning.failed():
                    log.warning("other regions' sightings not read, database unavailable: %s",
                                exc.__class__.__name__)
            except Exception as exc:  # a bug: the loop goes on, detection does too (on its own runs)
                if self._corroborate_warning.failed():
                    log.error("corroboration failed, trying again: %s", _one_line(exc), exc_info=exc)
            else:
                self._corroborate_warning.ok()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CORROBORATE_EVERY)

    async def _corroborate(self, now: datetime) -> list[str]:
        """Takes DOWN the targets failing here (``corroborate_after`` in a row, not in maintenance)
        that another alive region calls DOWN (module docstring); returns their names."""
        need = self.detection.corroboration_run
        if need is None or not self._others_alive:
            return []
        failing = [name for name, d in self.detectors.items()
                   if d.failing() >= need and not self.detection.maintenance_for(name, now)]
        if not failing:
            return []
        down = await self._in_db(self._down_elsewhere, failing, now)
        done = []
        for name, regions in down.items():
            decision = self.detectors[name].corroborate(at=datetime.now(UTC), regions=regions)
            if decision is None or decision.transition is None:
                continue  # DOWN meanwhile, or good again: its own results decided
            done.append(name)
            self._formed.add(name)
            self._held.append(_Held(self.targets[name], decision.transition))
            log.info("%s: %d failures in a row here, DOWN in %s: corroborated", name,
                     decision.transition.cause["failures"], ", ".join(vantage.label(r) for r in regions),
                     extra={"event": "corroborated", "target": name, "region": self.region, "down_in": regions})
        for name in done:
            t = self.targets[name]
            try:
                self.metrics.set_state(target=name, provider=t.provider, region=self.region, state="down")
            except Exception as exc:  # as in _observe: the metric is lost, never the state change
                if self._metrics_warning.failed():
                    log.warning("metrics not updated for %s: %s", name, _one_line(exc))
        if done:
            await self._apply_held()
            if self._confirming_across_regions():  # a DOWN here is news for the third region, as in _handle
                for name in done:
                    await self._suspect(name, now)
        return done

    def _down_elsewhere(self, targets: list[str], now: datetime) -> dict[str, list[str]]:
        with Session(self.engine) as session:
            alive = self._alive(session, now)
            return down_elsewhere(session=session, targets=targets, region=self.region, alive=alive)

    async def _apply_held(self, *, force: bool = False) -> None:
        if not self._held:
            return
        batch, self._held = self._held, []
        try:
            done = await self._in_db(self._apply, batch)
        except SQLAlchemyError as exc:  # the database is away: keep them, try again shortly
            self._hold(batch, exc)
            return
        except Exception:
            # Not the database: one of them is one the store cannot take. Held, it would fail again
            # every tick and hold up every later one; so each goes alone, and only one that fails
            # alone is given up on, said loudly.
            done = await self._apply_one_by_one(batch)
        if (away := self._held_warning.ok()) is not None:
            log.info("database back: %d held state changes written after %.0f s", len(batch), away)
        self.grouper.add(done)
        if force:  # shutting down: send what is held now rather than lose it with the process
            await self._enqueue_due(datetime.now(UTC), take_at=datetime.now(UTC) + timedelta(
                seconds=self.alerts.group_window))

    def _hold(self, batch: list[_Held], exc: SQLAlchemyError) -> None:
        self._held = batch + self._held
        if self._held_warning.failed():
            log.warning("database unavailable, holding %d state changes until it is back: %s", len(self._held),
                        _one_line(exc))

    async def _apply_one_by_one(self, batch: list[_Held]) -> list[alert_events.Transition]:
        done: list[alert_events.Transition] = []
        for i, held in enumerate(batch):
            try:
                done += await self._in_db(self._apply, [held])
            except SQLAlchemyError as exc:
                self._hold(batch[i:], exc)
                break
            except Exception as exc:
                tr = held.transition
                log.error("state change of %s %s -> %s at %s not recorded: %s", held.target.name, tr.from_,
                          tr.to, tr.at.isoformat(), _one_line(exc), exc_info=exc)
        return done

    def _apply(self, batch: list[_Held]) -> list[alert_events.Transition]:
        """Open, worsen or close this region's incidents for these state changes, record the region's
        sightings, and bring each target's global incident in line with the quorum: one transaction,
        under the quorum lock. Returns the transitions to alert (`RegionalTransition` for this
        region's incidents; plain ones for global incidents this transaction changed). Logged once
        committed, so a transaction the database refused (and that is tried again) says nothing."""
        out: list[alert_events.Transition] = []
        said: list[Callable[[], None]] = []
        with Session(self.engine) as session:
            lock_quorum(session)
            alive = self._alive(session, datetime.now(UTC))
            for held in batch:
                t, tr = held.target, held.transition
                record_sighting(session=session, target=t.name, region=self.region, state=str(tr.to), since=tr.since)
                if held.formed:  # no change of state: only this region's view joining the quorum
                    judged = self._judge(session, t, alive=alive, at=tr.at)
                    if judged is not None:
                        out.append(judged[0])
                        said.append(judged[1])
                    continue
                said.append(partial(_log_state_change, t.name, self.region, tr))
                if tr.to is Status.UP:
                    row = open_incident_for(session=session, target=t.name, region=self.region)
                    if row is not None:
                        close_incident(session=session, incident_id=row.id, at=tr.at)
                        said.append(partial(_log_incident, "regional", "closed", _facts(row), self.region,
                                            (self.region,)))
                else:
                    opened = open_incident_for(session=session, target=t.name, region=self.region) is None
                    row = open_incident(session=session, target=t.name, provider=t.provider, region=self.region,
                                        state=str(tr.to), cause=dict(tr.cause), at=tr.since)
                    if opened:
                        said.append(partial(_log_incident, "regional", "opened", _facts(row), self.region,
                                            (self.region,)))
                if row is not None:
                    out.append(RegionalTransition(
                        target=t.name, provider=t.provider, from_state=str(tr.from_), to_state=str(tr.to), at=tr.at,
                        incident_id=row.id, region=self.region, cause=dict(tr.cause), opened_at=row.opened_at))
                # Judged after each change, in order: a batch held while the database was away may
                # hold an outage's start and its end, and each is news for the global incident.
                judged = self._judge(session, t, alive=alive, at=tr.at, cause=dict(tr.cause))
                if judged is not None:
                    out.append(judged[0])
                    said.append(judged[1])
            session.commit()
        for say in said:
            say()
        return out

    # -- several vantage points, one voice --------------------------------------------------------
    def _alive(self, session: Session, now: datetime) -> dict[str, datetime]:
        """The regions alive (this one, and those with a recent heartbeat), each with when its
        monitor started."""
        alive = vantage.alive_regions(session=session, now=now, timeout=self.detection.heartbeat_timeout)
        return {**alive, self.region: self.started_at}

    def _judge(self, session: Session, target: Target, *, alive: dict[str, datetime], at: datetime,
               cause: dict[str, Any] | None = None, seen: list | None = None, open_global: set[str] | None = None,
               ) -> tuple[alert_events.Transition, Callable[[], None]] | None:
        """``target``'s global incident after the quorum over the ``alive`` regions' sightings (read
        now unless given as ``seen``); the transition to alert and its log line when this changed it.

        A region counts with the state its detector holds: one it judged since its monitor started,
        or DOWN/DEGRADED resumed from its open incident after a restart. A region (re)started and
        UP only by default has not looked yet and does not count until it has (counting it as up
        would break the quorum of an outage the others see: a false recovery, then a second
        page). With no region counting, nobody can tell: the incident is left as it is.
        ``open_global``: the targets known to have an open global incident (saves a query for
        each target with neither an incident nor a quorum, the common case at each heartbeat)."""
        rows = seen if seen is not None else sightings(session=session, targets=[target.name])
        counted = {r.region for r in rows
                   if r.region in alive and (r.updated_at >= alive[r.region] or r.state != "up")}
        if not counted:
            return None
        verdict = quorum.verdict((quorum.Sighting(r.region, r.state, r.since) for r in rows),
                                 quorum=self.detection.quorum, alive=counted)
        if open_global is not None and verdict.scope != "global" and target.name not in open_global:
            return None
        regions = list(verdict.regions) if verdict.scope == "global" else []
        change = apply_verdict(session=session, target=target.name, provider=target.provider, verdict=verdict,
                               at=at, cause={**(cause or {}), "regions": regions} if regions else cause)
        if change is None:
            return None
        from_state, to_state, row = change
        transition = alert_events.Transition(
            target=target.name, provider=target.provider, from_state=from_state, to_state=to_state, at=at,
            incident_id=row.id, region="", cause={**(cause or {}), "regions": sorted(row.regions)},
            opened_at=row.opened_at)
        what = "opened" if from_state == "up" else "closed" if to_state == "up" else "worsened"
        return transition, partial(_log_incident, "global", what, _facts(row), "", tuple(sorted(row.regions)),
                                   needed=quorum.needed(self.detection.quorum, len(counted)), counting=len(counted))

    def _heartbeat(self, now: datetime) -> list[alert_events.Transition]:
        """This region's heartbeat; regions lost or back (their alerts queued here, in the same
        transaction); then every target's quorum judged again, since the alive regions may have
        changed. Returns the global transitions this made.

        Only a monitor that has itself been writing its heartbeat without a gap for the whole
        timeout calls another region lost: after the database was away for everyone, or after
        this monitor's own start, every other heartbeat looks old for a while, and announcing
        those losses would page for monitors that were fine all along."""
        out: list[alert_events.Transition] = []
        said: list[Callable[[], None]] = []
        timeout = self.detection.heartbeat_timeout
        steady_since = self._beating_since
        if self._last_beat is None or steady_since is None or (now - self._last_beat).total_seconds() > timeout:
            steady_since = now
        with Session(self.engine) as session:
            lock_quorum(session)
            back = vantage.beat(session=session, region=self.region, now=now, started_at=self.started_at)
            steady = (now - steady_since).total_seconds() >= timeout
            changes = ([back] if back else []) + (
                vantage.mark_lost(session=session, now=now, timeout=timeout) if steady else [])
            said += [partial(_log_vantage, c) for c in changes]
            events = vantage.events(changes, config=self.alerts, now=now)
            if events:
                enqueue(session=session, events=events, now=now)
            alive = self._alive(session, now)
            self._others_alive = any(region != self.region for region in alive)
            by_target: dict[str, list] = {}
            for row in sightings(session=session, targets=list(self.targets)):
                by_target.setdefault(row.target, []).append(row)
            open_global = set(session.exec(select(IncidentRow.target).where(
                IncidentRow.scope == "global", IncidentRow.closed_at.is_(None))))
            for name, rows in by_target.items():
                judged = self._judge(session, self.targets[name], alive=alive, at=now, seen=rows,
                                     open_global=open_global)
                if judged is not None:
                    out.append(judged[0])
                    said.append(judged[1])
            late = self._unannounced(session, now)
            said += [partial(_log_late, t) for t in late]
            out += late
            session.commit()
        self._last_beat, self._beating_since = now, steady_since
        for say in said:
            say()
        return out

    def _unannounced(self, session: Session, now: datetime) -> list[alert_events.Transition]:
        """Open global incidents whose page never reached the outbox, to be announced now.

        The monitor whose commit opened a global incident holds its page for the group window
        before queueing it; should it stop in between, no other monitor would ever page for an
        outage they all see. So each heartbeat notes the open global incidents it has not seen
        before, and once one has been open for the group window plus two heartbeats since this
        monitor first saw it (plenty for its opener to have queued the page: counted from the
        sighting, not from ``opened_at``, which is when the outage began and may be long before
        the commit) and no down or degraded alert in the outbox names it, announces it (the
        outbox's event key keeps one page however many monitors do so). A recovery lost the
        same way is not made up for: the incident closes, the page stays open on the receiver.
        """
        rows = list(session.exec(select(IncidentRow).where(
            IncidentRow.scope == "global", IncidentRow.closed_at.is_(None))).all())
        seen = self._open_seen = {r.id: self._open_seen.get(r.id, now) for r in rows if r.target in self.targets}
        wait = timedelta(seconds=self.alerts.group_window + 2 * self.alerts.heartbeat_every + 5)
        due = [r for r in rows if seen.get(r.id) is not None and now - seen[r.id] >= wait]
        if not due:
            return []
        since = min(r.opened_at for r in due) - timedelta(seconds=self.alerts.group_window)
        paged = {member.get("incident_id")
                 for payload in session.exec(select(AlertOutbox.payload).where(
                     AlertOutbox.rule.in_(("down", "degraded")), AlertOutbox.created_at >= since))
                 for member in (payload or {}).get("members", ())}
        out = []
        for r in due:
            seen[r.id] = None  # looked at: paged, or paged now
            if r.id not in paged:
                out.append(alert_events.Transition(
                    target=r.target, provider=r.provider, from_state="up", to_state=r.state, at=r.opened_at,
                    incident_id=r.id, region="", cause={**(r.cause or {}), "regions": sorted(r.regions or {})},
                    opened_at=r.opened_at))
        return out

    async def _vantage_loop(self, stop: asyncio.Event, client: httpx.AsyncClient) -> None:
        every = self.alerts.heartbeat_every
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if stop.is_set():
                return
            try:
                self.grouper.add(await self._in_db(self._heartbeat, datetime.now(UTC)))
            except SQLAlchemyError as exc:
                if self._vantage_warning.failed():
                    log.warning("heartbeat not written, database unavailable: %s", exc.__class__.__name__)
            except Exception as exc:  # a bug must not end the loop: this region would be reported lost
                if self._vantage_warning.failed():
                    log.error("heartbeat failed, trying again next period: %s", _one_line(exc), exc_info=exc)
            else:
                self._vantage_warning.ok()
            if self.alerts.heartbeat_url:
                await vantage.ping(client, self.alerts.heartbeat_url)

    # -- background loops ---------------------------------------------------------------------
    async def _enqueue_due(self, now: datetime, *, take_at: datetime | None = None) -> None:
        ready = self.grouper.take(take_at or now)
        # Reminders and the SLO check read the database, so they run on their own period, not
        # on every housekeeping tick; transitions that are ready always go out at once.
        remind = bool(self.alerts.reminder_every) and now - self._reminders_checked >= timedelta(
            seconds=min(self.alerts.reminder_every or 0, self.reminder_check))
        slo = (bool(self._slo_rules) or self._feature_slo) and now - self._slo_checked >= timedelta(
            seconds=self.slo_interval)
        if not (ready or remind or slo):
            return
        try:
            events = await self._in_db(self._enqueue, ready, now, remind, slo)
        except SQLAlchemyError:
            self.grouper.add(ready)  # not queued: taken again next tick, so no page is lost
            raise
        except Exception:
            if not ready:
                raise  # a reminder or SLO check: logged by the loop, tried again next period
            # Not the database: something in these transitions (or the periodic checks) the rules
            # cannot handle. Trying the batch again would fail again, every tick, for good; so
            # each transition goes alone, and only one that fails alone is given up on, said loudly.
            events = await self._enqueue_one_by_one(ready, now)
            if events:
                log.info("queued %d alerts", events)
            if remind or slo:  # then the periodic checks alone: if they were the trouble, the loop says so
                events = await self._in_db(self._enqueue, [], now, remind, slo)
            else:
                return
        if events:
            log.info("queued %d alerts", events)

    async def _enqueue_one_by_one(self, ready: list[alert_events.Transition], now: datetime) -> int:
        events = 0
        for i, one in enumerate(ready):
            try:
                events += await self._in_db(self._enqueue, [one], now, False, False)
            except SQLAlchemyError:
                self.grouper.add(ready[i:])
                raise
            except Exception as exc:
                log.error("alert for %s %s -> %s at %s not queued, its alert rules failed: %s", one.target,
                          one.from_state, one.to_state, one.at.isoformat(), _one_line(exc), exc_info=exc)
        return events

    def _enqueue(self, ready: list[alert_events.Transition], now: datetime, remind: bool, slo: bool) -> int:
        with Session(self.engine) as session:
            # What each alert's features suffer (monitor/alerts/impact.py): read once for the call,
            # never raising into the alert path (an impact it cannot compute says what is missing).
            impact = impact_source(config=self.config, session=session, now=now)
            regional = [t for t in ready if isinstance(t, RegionalTransition)]
            events = events_for([t for t in ready if not isinstance(t, RegionalTransition)], config=self.alerts,
                                now=now, impact=impact)
            if regional and self._regional_alerts.rules:
                events += events_for(regional, config=self._regional_alerts, now=now, impact=impact)
            if remind:  # global incidents only: a regional one never paged in the first place
                incidents = list(session.exec(select(IncidentRow).where(IncidentRow.closed_at.is_(None),
                                                                        IncidentRow.scope == "global")))
                events += reminders(incidents, config=self.alerts, now=now, impact=impact)
            if slo and self._slo_rules:
                events += self._slo_events(session, now)
            if slo and self._feature_slo:
                more, self._feature_burning = feature_slo_events(session=session, config=self.config, now=now,
                                                                 burning=self._feature_burning)
                events += more
            count = enqueue(session=session, events=events, now=now) if events else 0
            session.commit()
        # Marked only once committed: a check the database refused is tried again next tick.
        if remind:
            self._reminders_checked = now
        if slo:
            self._slo_checked = now
        return count

    def _slo_events(self, session: Session, now: datetime) -> list:
        """The SLO burn rule: availability over each rule's window, from this region's history."""
        samples = []
        for window in {rule.window for rule in self._slo_rules}:
            for summary in target_summary(session=session, since=now - timedelta(seconds=window), until=now,
                                          region=self.region):
                target = self.targets.get(summary.target)
                if target is not None and summary.availability is not None:
                    samples.append(Availability(target=summary.target, provider=target.provider, window=window,
                                                value=summary.availability, region=self.region))
        events, self._burning = slo_events(samples, config=self.alerts, burning=self._burning, now=now)
        return events

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        last_prune = last_trim = datetime.min.replace(tzinfo=UTC)
        while not stop.is_set():
            now = datetime.now(UTC)
            try:
                await self._confirm_suspects(now)
                await self._apply_held()
                await self._enqueue_due(now)
                if now - last_prune > timedelta(hours=1):
                    await self._in_db(self._prune, now)
                    last_prune = now
                if now - last_trim > self.release_memory_every:
                    last_trim = now
                    await asyncio.to_thread(release_freed_memory)
            except SQLAlchemyError as exc:
                if self._housekeeping_warning.failed():
                    log.warning("housekeeping deferred, database unavailable: %s", exc.__class__.__name__)
            except Exception as exc:  # a bug must not end the loop: alerts would stop being queued
                if self._housekeeping_warning.failed():
                    log.error("housekeeping failed, trying again next tick: %s", _one_line(exc), exc_info=exc)
            else:
                self._housekeeping_warning.ok()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.housekeeping_interval)

    def _prune(self, now: datetime) -> None:
        with Session(self.engine) as session:
            prune(session=session, now=now, **self.config.storage.model_dump())
            session.commit()

    async def _vendor_loop(self, stop: asyncio.Event, client: httpx.AsyncClient) -> None:
        pages = {t.provider: t.status_page for t in self.targets.values() if t.status_page}
        while not stop.is_set() and pages:
            try:
                statuses = await asyncio.gather(*(self._fetch_status(client, provider, url)
                                                  for provider, url in pages.items()))
                await self._in_db(self._record_vendor, statuses)
            except SQLAlchemyError as exc:
                if self._vendor_warning.failed():
                    log.warning("status snapshots deferred, database unavailable: %s", exc.__class__.__name__)
            except Exception as exc:  # a bug must not end the loop: status polling would stop for good
                if self._vendor_warning.failed():
                    log.error("status pages not recorded, trying again next period: %s", _one_line(exc),
                              exc_info=exc)
            else:
                self._vendor_warning.ok()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.status_interval)

    async def _fetch_status(self, client: httpx.AsyncClient, provider: str, url: str) -> VendorStatus:
        """One page; whatever goes wrong reading it is that page's error, never the other pages'."""
        try:
            return await fetch_status(client, summary_url(url), provider=provider)
        except Exception as exc:  # fetch_status handles what pages do; this is for what it did not foresee
            if self._page_warnings.setdefault(provider, _Repeating()).failed():
                log.error("status page of %s: unexpected %s", provider, _one_line(exc), exc_info=exc)
            return VendorStatus(provider, datetime.now(UTC), error=f"unexpected {type(exc).__name__}")

    def _record_vendor(self, statuses) -> None:
        with Session(self.engine) as session:
            for status in statuses:
                if status.error:
                    continue
                record_status(session=session, provider=status.provider, fetched_at=status.fetched_at,
                              indicator=status.indicator, description=status.description,
                              incidents=[_incident_json(i) for i in status.incidents])
                for incident in status.incidents:
                    seen = (status.provider, incident.id, incident.status)
                    if seen not in self._vendor_seen:
                        self._vendor_seen.add(seen)
                        when = incident.first_post_at or incident.created_at
                        log.info("vendor status: %s posted %r, %s (impact %s) at %s", status.provider, incident.name,
                                 incident.status, incident.impact, when.isoformat() if when else "an unknown time",
                                 extra={"event": "vendor_post", "provider": status.provider,
                                        "vendor_incident": incident.name, "status": incident.status,
                                        "impact": incident.impact, "posted_at": when.isoformat() if when else None})
                for row in session.exec(select(IncidentRow).where(
                        IncidentRow.provider == status.provider, IncidentRow.vendor_first_post_at.is_(None))):
                    found = lead_time(row.opened_at, status.incidents, window=timedelta(hours=2))
                    if found is not None:
                        set_vendor_post(session=session, incident_id=row.id, first_post_at=found[0])
            session.commit()


def _cause_text(cause: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in cause.items())


def _log_state_change(target: str, region: str, tr: Transition) -> None:
    log.info("%s%s: %s -> %s (%s)", target, f"@{region}" if region else "", tr.from_, tr.to,
             _cause_text(tr.cause) or "no cause given",
             extra={"event": "state_change", "target": target, "region": region, "from_state": str(tr.from_),
                    "to_state": str(tr.to), "cause": dict(tr.cause), "at": tr.at.isoformat()})


def _facts(row: IncidentRow) -> SimpleNamespace:
    """What a log line needs of an incident, read before the commit expires the row's attributes."""
    return SimpleNamespace(id=row.id, target=row.target, state=row.state, cause=dict(row.cause or {}))


def _log_incident(scope: str, what: str, row: SimpleNamespace, region: str, regions: tuple[str, ...],
                  **quorum_: Any) -> None:
    seen = ", ".join(r or "(default)" for r in regions) or "none"
    note = f" (quorum {quorum_['needed']} of {quorum_['counting']} regions counting)" if quorum_ else ""
    log.info("%s incident %d of %s %s: %s, regions %s%s", scope, row.id, row.target, what, row.state, seen, note,
             extra={"event": f"incident_{what}", "scope": scope, "target": row.target, "region": region,
                    "incident_id": row.id, "to_state": "up" if what == "closed" else row.state,
                    "regions": list(regions), "cause": row.cause, **quorum_})


def _log_late(t: alert_events.Transition) -> None:
    log.warning("global incident %s of %s (%s since %s) was never announced, its monitor stopped first?: "
                "announcing it now", t.incident_id, t.target, t.to_state, t.at.isoformat(),
                extra={"event": "incident_late", "scope": "global", "target": t.target, "incident_id": t.incident_id,
                       "to_state": t.to_state})


def _log_vantage(change: vantage.Change) -> None:
    if change.lost:
        log.warning("vantage point %s lost: last heartbeat at %s", vantage.label(change.region),
                    change.last_seen.isoformat(), extra={"event": "vantage_lost", "region": change.region,
                                                         "last_seen": change.last_seen.isoformat()})
    else:
        log.info("vantage point %s is back", vantage.label(change.region),
                 extra={"event": "vantage_back", "region": change.region})


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _incident_json(incident) -> dict:
    def iso(when: datetime | None) -> str | None:
        return when.isoformat() if when else None

    return {"id": incident.id, "name": incident.name, "status": incident.status, "impact": incident.impact,
            "created_at": iso(incident.created_at), "first_post_at": iso(incident.first_post_at)}
