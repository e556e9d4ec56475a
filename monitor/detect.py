"""Outage detection: a state machine per target over its probe results.

Pure and synchronous: no I/O and no clock. Every time comes from the results themselves, so
the same results always give the same decisions (which is what lets ``bench/detection.py``
replay hours of outages in seconds over this very code).

A result on its own is UP-, DEGRADED- or DOWN-kind: its `ErrorKind`'s status, except that a
429 (RATE_LIMITED) is DEGRADED here, as are WRONG_ANSWER and CONTENT_FILTERED (the service
answers, just not as the product needs). The target's state moves by these rules, where
``F`` is ``failure_threshold`` and ``S`` is ``success_threshold``::

    to DOWN           the last F results are all DOWN-kind; or, when other regions call the
                      target DOWN (`Detector.corroborate`), the last ``corroborate_after`` are
    UP -> DEGRADED    the last F results are all bad (not UP-kind), not all DOWN-kind; or a
                      full window's failed share >= degraded_error_rate; or the window's median
                      TTFT / total time of scheduled probes above its limit (judged once no confirmation probe of a
                      possible DOWN is still to come: that probe decides first)
    out of DOWN       the last N results are all good (not DOWN-kind): to UP when they are all
                      UP-kind, else to DEGRADED. N is S, doubled (up to the window) each time a
                      target falls DOWN again within one window of recovering
    DEGRADED -> UP    the last S results are all UP-kind, and the window no longer says
                      DEGRADED (a tripped error rate must fall to recover_error_rate: hysteresis)

The window restarts when a target leaves DOWN: the outage's failures close with it, so a
recovered target is not at once DEGRADED by them. Results taken while DOWN never enter it.

After a bad result that could change the state, `Decision.confirm_in` asks for a
confirmation probe (``confirm_after``), so an outage is confirmed in seconds; the same for a
good result while DOWN. A probe still without a first token after ``hedge_after`` gets its
confirmations at once, alongside it (`Detector.hedges`): a hang fails each probe only at the
first-token deadline, and waiting out one deadline per confirmation would take minutes.

Inside a maintenance window the state is tracked but nothing is announced; a state that
differs from the last announced one when the window ends is announced with the first result
after it.
"""

from __future__ import annotations

import statistics
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.config.detection import DetectionConfig, MaintenanceWindow
from probes.result import ErrorKind, ProbeResult, Status

__all__ = ["HEDGE_FACTOR", "Decision", "Detector", "Transition", "observed_status"]

# A probe is hedged no sooner than this many times the target's usual first token.
HEDGE_FACTOR = 3.0

# The service answered "slow down" to our key: impaired for the product, not gone.
# (ErrorKind.status calls it DOWN, the right default for one probe on its own.)
_DEGRADED_HERE = {ErrorKind.RATE_LIMITED: Status.DEGRADED}


def observed_status(result: ProbeResult) -> Status:
    """What one result says on its own, before any threshold: its ErrorKind's status, 429 DEGRADED."""
    return _DEGRADED_HERE.get(result.error_kind, result.error_kind.status)


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a target's state, with its evidence."""

    target: str
    from_: Status
    to: Status
    at: datetime
    """When the deciding result was known: its start plus its total time."""
    since: datetime
    """Start of the first result of the evidence: the best estimate of when the change began."""
    cause: dict[str, Any] = field(default_factory=dict)
    """Which rule fired, with the actual values and the thresholds crossed, and the error kinds
    seen with counts, e.g. ``{"rule": "failures", "failures": 3, "threshold": 3, "kinds": {"overloaded": 3}}``."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What `Detector.feed` concluded from one result."""

    state: Status
    """The target's state after this result (tracked even inside a maintenance window)."""
    observed: Status
    """This result on its own (see `observed_status`)."""
    transition: Transition | None = None
    """A change to announce (open or update an incident, alert); None inside maintenance."""
    confirm_in: float | None = None
    """Seconds from now until the scheduler should send a confirmation probe; None: none
    needed, the normal interval goes on. A later Decision's value replaces an earlier one."""
    maintenance: MaintenanceWindow | None = None
    """The maintenance window this result fell in, if any."""
    suppressed: Transition | None = None
    """A change that happened inside a maintenance window: tracked, not announced."""

    @property
    def in_maintenance(self) -> bool:
        return self.maintenance is not None


@dataclass(frozen=True, slots=True)
class _Entry:
    status: Status
    kind: ErrorKind
    at: datetime
    ttft_ms: float | None  # only from results that are not DOWN-kind: a failure's timing says nothing
    total_ms: float | None
    confirm: bool


class Detector:
    """The state machine of one target. Feed it every result of that target, in the order they end."""

    def __init__(self, config: DetectionConfig, target: str, *, state: Status = Status.UP) -> None:
        """``state`` is where it starts (e.g. the last state stored before a restart)."""
        self.config = config
        self.target = target
        self._state = state
        self._announced = state
        self._state_since: datetime | None = None
        self._state_cause: dict[str, Any] = {}
        # Runs are read from the end of _recent (never cleared); rates and medians from _window.
        self._recent: deque[_Entry] = deque(maxlen=max(config.window, 20) + 1)
        self._window: deque[_Entry] = deque(maxlen=config.window)
        self._seq = 0
        self._left_down_seq: int | None = None
        self._needed = config.success_threshold
        self._rate_tripped = False

    @property
    def state(self) -> Status:
        return self._state

    def feed(self, result: ProbeResult, *, confirm: bool = False) -> Decision:
        """Takes one result of this target (``confirm``: it came from a confirmation probe)."""
        if result.target != self.target:
            raise ValueError(f"detector of {self.target!r} fed a result of {result.target!r}")
        observed = observed_status(result)
        timed = observed is not Status.DOWN
        # A time no real probe takes (negative, NaN, infinite, past a day) is no time at all here: it
        # would spoil the medians and hedge_after, or overflow the transition's end.
        ttft_ms, total_ms = _duration(result.ttft_ms), _duration(result.total_ms)
        entry = _Entry(observed, result.error_kind, result.at, ttft_ms if timed else None,
                       total_ms if timed else None, confirm)
        end = result.at + timedelta(milliseconds=total_ms or 0.0)
        self._seq += 1
        self._recent.append(entry)
        if self._state is not Status.DOWN:
            self._window.append(entry)

        before = self._state
        verdict = self._next()
        tracked = None
        if verdict is not None:
            to, since, cause = verdict
            self._enter(to, since, cause)
            tracked = Transition(self.target, before, to, end, since, cause)

        return self._conclude(tracked, observed, started=result.at, end=end)

    def failing(self) -> int:
        """How many DOWN-kind results in a row, ending with the latest, the target has while it is
        not DOWN: the confirmation under way (0 when DOWN or when the latest result was good)."""
        if self._state is Status.DOWN:
            return 0
        return len(self._run(lambda e: e.status is Status.DOWN))

    def corroborate(self, *, at: datetime, regions: Iterable[str]) -> Decision | None:
        """Other regions (``regions``) call this target DOWN, as of ``at``: DOWN here too once
        ``corroborate_after`` results in a row have failed, without waiting for the rest of
        ``failure_threshold``. None when that does not apply (off, DOWN already, too few failures).

        A quorum of two regions would otherwise wait for the second region's whole confirmation to
        finish after the first's (module docstring of `monitor.service`): the first region's
        ``failure_threshold`` failures already say the failures are no blip, and what the second
        region adds is that it sees the failure too, which a short run of its own shows. The
        threshold keeps random failures out: at 2% a probe, 4 in a row (the default) start once in
        ~6 million probes, so a regional outage elsewhere is not made global by chance."""
        need = self.config.corroboration_run
        down = self._run(lambda e: e.status is Status.DOWN)
        if need is None or self._state is Status.DOWN or len(down) < need:
            return None
        before = self._state
        cause = {"rule": "corroborated", "failures": len(down), "threshold": need,
                 "down_in": sorted(set(regions)), "kinds": _kinds(down)}
        self._enter(Status.DOWN, down[0].at, cause)
        tracked = Transition(self.target, before, Status.DOWN, at, down[0].at, cause)
        return self._conclude(tracked, Status.DOWN, started=at, end=at)

    def _conclude(self, tracked: Transition | None, observed: Status, *, started: datetime,
                  end: datetime) -> Decision:
        """The decision after a (possible) change of state: suppressed inside a maintenance window
        (judged at ``started``), else announced if the state differs from the last announced."""
        window = self.config.maintenance_for(self.target, started)
        if window is not None:
            return Decision(self._state, observed, maintenance=window, suppressed=tracked)
        announce = None
        if self._state is not self._announced:
            if tracked is not None:
                announce = Transition(self.target, self._announced, tracked.to, end, tracked.since, tracked.cause)
            else:  # the state changed inside a maintenance window that has now ended
                announce = Transition(self.target, self._announced, self._state, end, self._state_since or started,
                                      {**self._state_cause, "after_maintenance": True})
            self._announced = self._state
        return Decision(self._state, observed, transition=announce, confirm_in=self._confirm_in())

    # --- the rules -----------------------------------------------------------------------------

    def _next(self) -> tuple[Status, datetime, dict[str, Any]] | None:
        cfg, state = self.config, self._state
        down = self._run(lambda e: e.status is Status.DOWN)
        if state is not Status.DOWN and len(down) >= cfg.failure_threshold:
            return Status.DOWN, down[0].at, {"rule": "failures", "failures": len(down),
                                             "threshold": cfg.failure_threshold, "kinds": _kinds(down)}
        if state is Status.DOWN:
            good = self._run(lambda e: e.status is not Status.DOWN)
            if len(good) < self._needed:
                return None
            to = Status.UP if all(e.status is Status.UP for e in good) else Status.DEGRADED
            return to, good[0].at, self._recovered(good, self._needed)
        if state is Status.UP:
            if down and self._confirms_left():
                return None  # a confirmation probe is coming, seconds away: it says DOWN or not
            bad = self._run(lambda e: e.status is not Status.UP)
            if len(bad) >= cfg.failure_threshold:
                return Status.DEGRADED, bad[0].at, {"rule": "degraded_results", "results": len(bad),
                                                    "threshold": cfg.failure_threshold, "kinds": _kinds(bad)}
            judged = self._judge_window(leaving=False)
            return (Status.DEGRADED, *judged) if judged else None
        # DEGRADED
        self._rate_tripped |= self._judge_window(leaving=False, rate_only=True) is not None
        up = self._run(lambda e: e.status is Status.UP)
        if len(up) >= cfg.success_threshold and self._judge_window(leaving=True) is None:
            return Status.UP, up[0].at, self._recovered(up, cfg.success_threshold)
        return None

    def _judge_window(self, *, leaving: bool, rate_only: bool = False) -> tuple[datetime, dict[str, Any]] | None:
        """Why the window says DEGRADED (the first entry to blame, and the cause), or None.

        ``leaving``: judged for a DEGRADED target that would be UP, where a tripped error rate
        must fall to recover_rate rather than just below degraded_error_rate.
        """
        cfg, entries = self.config, list(self._window)
        if len(entries) >= cfg.window:
            bad = [e for e in entries if e.status is not Status.UP]
            rate = len(bad) / len(entries)
            limit, over = cfg.degraded_error_rate, rate >= cfg.degraded_error_rate
            if leaving and self._rate_tripped:
                limit, over = cfg.recover_rate, rate > cfg.recover_rate
            if over:
                return bad[0].at, {"rule": "error_rate", "error_rate": round(rate, 4), "limit": limit,
                                   "window": len(entries), "failures": len(bad), "kinds": _kinds(bad)}
        if rate_only:
            return None
        for name, limit in (("ttft_ms", cfg.degraded_ttft_ms), ("total_ms", cfg.degraded_total_ms)):
            if limit is None:
                continue
            # Scheduled probes only: confirmations go because a probe failed or was slow, so
            # counting their timings would let one slow spell fill the window with slow answers.
            timed = [e for e in entries if getattr(e, name) is not None and not e.confirm]
            if len(timed) < (cfg.window + 1) // 2:  # too few to call a median
                continue
            p50 = statistics.median(getattr(e, name) for e in timed)
            if p50 > limit:
                first_slow = next(e for e in timed if getattr(e, name) > limit)
                return first_slow.at, {"rule": "latency", f"{name}_p50": round(p50, 1), "limit": limit,
                                       "samples": len(timed), "slow": sum(getattr(e, name) > limit for e in timed)}
        return None

    def _recovered(self, good: list[_Entry], threshold: int) -> dict[str, Any]:
        cause: dict[str, Any] = {"rule": "recovered", "successes": len(good), "threshold": threshold}
        if self._state_since is not None:
            cause["lasted_s"] = round((good[0].at - self._state_since).total_seconds(), 3)
        kinds = _kinds(good)
        if kinds:
            cause["kinds"] = kinds
        return cause

    def _enter(self, to: Status, since: datetime, cause: dict[str, Any]) -> None:
        cfg = self.config
        if to is Status.DOWN:
            relapse = self._left_down_seq is not None and self._seq - self._left_down_seq <= cfg.window
            self._needed = min(self._needed * 2, max(cfg.window, cfg.success_threshold)) if relapse \
                else cfg.success_threshold
            if relapse:
                cause["relapse"] = True
                cause["success_needed"] = self._needed
        elif self._state is Status.DOWN:
            self._left_down_seq = self._seq
            self._window.clear()
            self._window.extend(list(self._recent)[-self._needed:])
        self._rate_tripped = to is Status.DEGRADED and self._judge_window(leaving=False, rate_only=True) is not None
        self._state, self._state_since, self._state_cause = to, since, cause

    def _confirm_in(self) -> float | None:
        """Seconds until the next confirmation probe, while a change is under way but unconfirmed."""
        cfg, state = self.config, self._state
        if not self._recent or not cfg.confirm_after:
            return None
        down = len(self._run(lambda e: e.status is Status.DOWN))
        pending = (
            (state is not Status.DOWN and 0 < down < cfg.failure_threshold)
            or (state is Status.UP and 0 < len(self._run(lambda e: e.status is not Status.UP)) < cfg.failure_threshold)
            or (state is Status.DOWN and 0 < len(self._run(lambda e: e.status is not Status.DOWN)) < self._needed)
            or (state is Status.DEGRADED and 0 < len(self._run(lambda e: e.status is Status.UP)) < cfg.success_threshold
                and self._judge_window(leaving=True) is None)
        )
        if not pending:
            return None
        sent = len(self._run(lambda e: e.confirm))
        return cfg.confirm_after[sent] if sent < len(cfg.confirm_after) else None

    def hedge_after(self) -> float | None:
        """Seconds without a first token after which a probe of this target gets its confirmations
        alongside it: ``hedge_after``, or `HEDGE_FACTOR` times the median first token of its recent
        scheduled probes if that is later (a model that always thinks a while before answering is
        slow by nature, not hung, and hedging it would multiply every probe). None: never."""
        cfg = self.config
        if cfg.hedge_after is None:
            return None
        ttfts = [e.ttft_ms for e in self._window if e.ttft_ms is not None and not e.confirm]
        usual = HEDGE_FACTOR * statistics.median(ttfts) / 1000 if len(ttfts) >= 3 else 0.0
        return max(cfg.hedge_after, usual)

    def hedges(self, *, at: datetime, confirm: bool = False) -> int:
        """How many confirmation probes to send now, alongside a probe of this target (started at
        ``at``; ``confirm``: itself a confirmation) that has gone `hedge_after` without a first
        token: as many as would take the target DOWN if it and they all fail, within what
        ``confirm_after`` allows. None while DOWN (a hang there changes nothing), inside a
        maintenance window (no confirmations there), or when ``hedge_after`` is unset."""
        cfg = self.config
        if cfg.hedge_after is None or self._state is Status.DOWN or cfg.maintenance_for(self.target, at):
            return 0
        failing = len(self._run(lambda e: e.status is Status.DOWN))
        # A scheduled probe ends the current run of confirmations; a confirmation is one more of it.
        used = len(self._run(lambda e: e.confirm)) + 1 if confirm else 0
        return max(0, min(cfg.failure_threshold - 1 - failing, len(cfg.confirm_after) - used))

    def _confirms_left(self) -> bool:
        """Whether `confirm_after` still has a probe to ask for in the current run of confirmations."""
        return len(self._run(lambda e: e.confirm)) < len(self.config.confirm_after)

    def _run(self, match: Callable[[_Entry], bool]) -> list[_Entry]:
        """The longest run of recent entries, ending with the latest, that all ``match``; oldest first."""
        run = []
        for entry in reversed(self._recent):
            if not match(entry):
                break
            run.append(entry)
        run.reverse()
        return run


_LONGEST_MS = 86_400_000.0


def _duration(ms: float | None) -> float | None:
    """``ms`` if it is a duration a probe can have (finite, 0 to a day), else None."""
    if isinstance(ms, int | float) and not isinstance(ms, bool) and 0 <= ms <= _LONGEST_MS:
        return float(ms)
    return None


def _kinds(entries: Iterable[_Entry]) -> dict[str, int]:
    """Error kinds seen (OK left out), with counts, most common first."""
    return dict(Counter(str(e.kind) for e in entries if e.kind is not ErrorKind.OK).most_common())
