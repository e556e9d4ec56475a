"""A phase's faults kept in force at the proxy, and the time up to which they certainly were.

A drill leases each fault (`DrillSpec.lease`, 5 s) and renews it every second, so a runner killed
with -9 leaves none behind. A lease can still run out under a live runner: the runner, the proxy
or the whole machine stalls longer than the lease (a starved process, a paused VM). Requests in
that window met no fault, and a drill that counted them would credit a feature with surviving an
outage that was not there: its primary answering "during" its own outage.

So `Leases` keeps, for each fault, when its last add or renewal that the proxy answered was
sent, plus the lease: the fault is certainly in force until then (`until`, the earliest of them).
A renewal refused because the lease ran out (the proxy's 404 says ``lapsed_at``, which tells a
lapse from a removal) puts the fault back at once and records the window from `until` to its
return as a `Lapse`. `Held` holds back the records and log entries that reach past `until`, and
leaves out of the phase's figures those that met a lapse. A fault gone from the proxy another
way was removed by someone (``airisk fault clear``, a restarted proxy): that is not undone but
said (`gone`), and the runner stops the drill, whose figures no longer describe it.

Times are wall-clock seconds (`time.time`), like the proxy's log and the load generator's records.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaos.control.client import ControlClient, ControlError, Refused
from chaos.drill.report import Tally


class LeaseError(RuntimeError):
    """The proxy refused a phase's fault (its message names the phase and the fault)."""


@dataclass(frozen=True, slots=True)
class Lapse:
    """A window in which a fault was not in force: from its lease's end to its return."""

    phase: str
    fault: str  # the fault's id
    type: str
    route: str | None
    start: float
    end: float

    def covers(self, start: float, end: float) -> bool:
        """Whether [start, end] (a request's span, or an instant) meets the window, whose start is
        already lapsed (the proxy's rule: lapsed at ``now >= expires_at``)."""
        return start < self.end and end >= self.start

    def describe(self) -> str:
        where = f" on route {self.route}" if self.route else ""
        at = time.strftime("%H:%M:%S", time.localtime(self.start))
        again = "; put back, its cycle starts again" if self.type == "flapping" else ""
        return (f"fault {self.type}{where} lapsed for {self.end - self.start:.1f} s from {at} (its lease ran out "
                f"before the runner renewed it: the runner, the proxy or the machine stalled{again})")


class Leases:
    """The faults this drill has in force at the proxy (see the module docstring).

    A renewal that fails another way (the proxy too slow to answer, a 5xx) costs nothing at once:
    `until` stays at the last expiry known, `Held` holds back what reaches past it, and the next
    renewal that is answered finds the gap (its 404 says when the lease ran out). Only when no
    renewal has been answered for a whole lease past `until` does the drill stop (`gone`)."""

    def __init__(self, client: ControlClient, run_id: str, lease: float, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.client, self.run_id, self.lease, self.clock = client, run_id, lease, clock
        self._bodies: dict[str, dict[str, Any]] = {}
        self._phases: dict[str, str] = {}  # fault id -> its phase's name
        # Our clock: sent + lease of the last add or renewal answered, a bound below the proxy's own
        # expires_at (it counts the lease from when it got the request), whatever its clock says.
        self._until: dict[str, float] = {}
        self._missing: dict[str, float] = {}  # lapsed, not put back yet (the proxy refused): since when
        self.lapses: list[Lapse] = []
        self.trouble: str | None = None  # the last renewal's failure, while renewals fail
        self.gone: str | None = None  # why the drill can no longer keep its faults (it stops)

    @property
    def active(self) -> list[str]:
        return list(self._bodies)

    @property
    def until(self) -> float:
        """Up to when every fault of the phase is certainly in force (infinity when there is none)."""
        return min(self._until.values(), default=math.inf)

    def add(self, phase: int, name: str, faults: list[dict[str, Any]]) -> None:
        """Put phase number ``phase`` (called ``name``)'s faults in force."""
        for i, fault in enumerate(faults):
            body = {**fault, "id": f"{self.run_id}-p{phase}-{i}", "for_s": self.lease}
            try:
                self._put(body)
            except ControlError as exc:
                raise LeaseError(f"the proxy refused phase {phase} fault {i}: {exc}") from None
            self._phases[body["id"]] = name

    def renew(self) -> list[Lapse]:
        """Renew every fault; put back each whose lease ran out (its `Lapse`, also kept in `lapses`).
        A fault removed by someone else is left so, and said in `gone`."""
        new: list[Lapse] = []
        failed = None
        try:
            for fault_id in list(self._bodies):
                try:
                    self._renew_one(fault_id, new)
                except ControlError as exc:
                    failed = f"fault {fault_id!r}: {exc}"
        finally:
            self.lapses += new
        self.trouble = failed
        if failed is not None and self.clock() > self.until + self.lease:
            self.gone = (f"the proxy has not kept the drill's faults for over {self.lease:g} s past their lease "
                         f"({failed}): the drill can no longer say what the product met")
        return new

    def _renew_one(self, fault_id: str, new: list[Lapse]) -> None:
        if fault_id in self._missing:  # lapsed, and the last try to put it back failed
            self._put(self._bodies[fault_id])
            new.append(self._lapse(fault_id, self._missing.pop(fault_id), self.clock()))
            return
        sent = self.clock()
        try:
            self.client.renew(fault_id, self.lease)
        except Refused as exc:
            if exc.status != 404:
                raise
            lapsed_at = exc.body.get("lapsed_at") if isinstance(exc.body, dict) else None
            if type(lapsed_at) not in (int, float):  # no time said (a bool is no time): removed, not lapsed
                self._forget(fault_id)
                self.gone = (f"fault {fault_id!r} was removed from the proxy (by `airisk fault clear`, or "
                             "the proxy restarted): the drill no longer injects it")
                return
            # It lapsed at `until` or later (the proxy counts the lease from when it got the renewal):
            # the gap is taken from `until`, whatever the proxy's clock says.
            self._missing[fault_id] = self._until[fault_id]
            self._put(self._bodies[fault_id])
            new.append(self._lapse(fault_id, self._missing.pop(fault_id), self.clock()))
        else:
            self._until[fault_id] = sent + self.lease

    def remove_all(self) -> list[Lapse]:
        """Remove every fault; one whose lease had run out before is a `Lapse` to the removal."""
        new = []
        for fault_id in list(self._bodies):
            now = self.clock()
            since = self._missing.get(fault_id, self._until[fault_id])
            if now > since:
                new.append(self._lapse(fault_id, since, now))
            with contextlib.suppress(ControlError):
                self.client.remove(fault_id)
            self._forget(fault_id)
        self.lapses += new
        return new

    def _put(self, body: dict[str, Any]) -> None:
        sent = self.clock()
        self.client.add(body)
        self._bodies[body["id"]] = body
        self._until[body["id"]] = sent + self.lease

    def _forget(self, fault_id: str) -> None:
        for table in (self._bodies, self._until, self._phases, self._missing):
            table.pop(fault_id, None)

    def _lapse(self, fault_id: str, start: float, end: float) -> Lapse:
        body = self._bodies[fault_id]
        scope = body.get("scope") if isinstance(body.get("scope"), dict) else {}
        route = body.get("route") or scope.get("route")
        return Lapse(self._phases.get(fault_id, "?"), fault_id, str(body.get("type")), route, start, end)


class Held:
    """The tally's door while faults are leased: a record (a product request) or a proxy log entry
    that reaches past `Leases.until` waits until what it met is known; one that met a `Lapse` is
    left out of its phase's figures (a record still counts in the per-second timeline: the product
    did see it). Everything else goes on to the tally as it comes."""

    def __init__(self, leases: Leases, tally: Tally) -> None:
        self.leases, self.tally = leases, tally
        self._records: list[dict[str, Any]] = []
        self._entries: list[dict[str, Any]] = []
        self.left_out: dict[Lapse, list[int]] = {}  # per lapse: records, entries
        self._state: tuple[float, int] = (math.inf, 0)  # (until, lapses) when all that waits was last looked at

    def add_records(self, records: list[dict[str, Any]]) -> None:
        self._release(records, [])

    def add_entries(self, entries: list[dict[str, Any]]) -> None:
        self._release([], entries)

    def release(self) -> None:
        """Let go what is now known (call after `Leases` renewed or removed faults)."""
        self._release([], [])

    def _release(self, records: list[dict[str, Any]], entries: list[dict[str, Any]]) -> None:
        until, lapses = self.leases.until, self.leases.lapses
        state = (until, len(lapses))
        if state != self._state:  # what was held may be known now: look at all of it again
            self._state = state
            records, entries = self._records + records, self._entries + entries
            self._records, self._entries = [], []
        elif not (records or entries):
            return
        wait, clean, met = [], [], []
        for r in records:
            start = r["t"]
            end = start + r["ms"] / 1000
            if end >= until:  # (a lapse starts at `until`, lapsed at that very instant)
                wait.append(r)
            elif self._met(lapses, start, end, 0):
                met.append(r)
            else:
                clean.append(r)
        self._records += wait
        self.tally.add_records(clean)
        self.tally.add_records(met, in_phase=False)
        wait, clean = [], []
        for e in entries:
            at = e.get("at", 0)  # when the proxy decided the request's faults (`chaos.proxy`)
            if at >= until:
                wait.append(e)
            elif not self._met(lapses, at, at, 1):
                clean.append(e)
        self._entries += wait
        self.tally.add_entries(clean)

    def _met(self, lapses: list[Lapse], start: float, end: float, kind: int) -> Lapse | None:
        for lapse in lapses:
            if lapse.covers(start, end):
                self.left_out.setdefault(lapse, [0, 0])[kind] += 1
                return lapse
        return None

    def notes(self) -> list[str]:
        """One line a lapse: when, how long, and what was left out of the figures for it."""
        out = []
        for lapse in self.leases.lapses:
            records, entries = self.left_out.get(lapse, (0, 0))
            out.append(f"{lapse.phase}: {lapse.describe()}; the {records:,} requests and {entries:,} proxy log entries "
                       "that met the window are left out of the phase's figures")
        return out
