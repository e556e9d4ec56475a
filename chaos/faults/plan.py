"""The faults in force at one injection point, and what they do to one request (`Plan`)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from chaos.faults.catalogue import FAULT_TYPES
from chaos.faults.fault import Fault, RequestInfo
from chaos.faults.wire import DelayHead


@dataclass(slots=True)
class Plan:
    """What to do to one request, after every matching fault has rolled its dice."""

    faults: list[Fault] = field(default_factory=list)  # those that fired, for the request log
    respond: Fault | None = None  # an error response or a connection fault; ends the request
    first_token_delay_s: float = 0.0
    token_gap_s: float | None = None
    stream: Fault | None = None  # at most one stream fault

    @property
    def names(self) -> list[str]:
        return [f.type for f in self.faults]


LAPSES_KEPT = 1000  # ids of faults whose lease ran out (the newest kept), for `FaultSet.lapsed_at`


class FaultSet:
    """The faults in force at one injection point. Not thread-safe; one event loop owns it."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._faults: dict[str, Fault] = {}
        self._lapsed: dict[str, float] = {}  # id -> when its lease ran out (the newest LAPSES_KEPT)
        self._rng = rng or random.Random()

    @property
    def empty(self) -> bool:
        """No fault in force (not even a lapsed one not yet pruned): `plan` would return an empty
        `Plan` for any request, so a hot path may skip describing the request (`RequestInfo`)."""
        return not self._faults

    def add(self, fault: Fault) -> Fault:
        self._faults[fault.id] = fault
        self._lapsed.pop(fault.id, None)
        return fault

    def remove(self, fault_id: str) -> bool:
        self._lapsed.pop(fault_id, None)
        return self._faults.pop(fault_id, None) is not None

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        self._lapsed.clear()
        return count

    def lapsed_at(self, fault_id: str, now: float | None = None) -> float | None:
        """When the lease of fault ``fault_id`` ran out, if that is how it left (not removed, and
        among the last `LAPSES_KEPT` to lapse); else None."""
        self.active(now)
        return self._lapsed.get(fault_id)

    def active(self, now: float | None = None) -> list[Fault]:
        now = time.time() if now is None else now
        for fault in [f for f in self._faults.values() if f.lapsed(now)]:
            del self._faults[fault.id]
            self._lapsed[fault.id] = fault.expires_at  # type: ignore[assignment]  # lapsed: it has one
            if len(self._lapsed) > LAPSES_KEPT:
                del self._lapsed[next(iter(self._lapsed))]
        return list(self._faults.values())

    def plan(self, req: RequestInfo, now: float | None = None) -> Plan:
        """Each matching fault that fires, in the order added, joins the plan by its category: the first
        error or connection fault ends the request, the first stream fault changes the answer, and
        every timing fault adds its delay (or sets the pacing)."""
        now = time.time() if now is None else now
        plan = Plan()
        if not self._faults:
            return plan
        for fault in self.active(now):
            if not fault.scope.matches(req):
                continue
            ftype = FAULT_TYPES[fault.type]
            if not ftype.fires(fault, now):
                continue
            if fault.probability < 1 and self._rng.random() >= fault.probability:
                continue
            if ftype.category == "timing":
                effect = ftype.timing(fault, self._rng)
                if isinstance(effect, DelayHead):
                    plan.first_token_delay_s += effect.seconds
                else:
                    plan.token_gap_s = effect.gap_s
            elif ftype.category == "stream":
                if plan.stream is not None:
                    continue
                plan.stream = fault
            else:
                if plan.respond is not None:
                    continue
                plan.respond = fault
            plan.faults.append(fault)
        return plan
