"""One fault in force: its type, parameters, probability, scope and lease, checked once.

A `Fault` is small data (after Toxiproxy's toxics): a type from `FAULT_TYPES`, its
parameters, a probability, a `Scope` saying which requests it hits, and a lease after
which it lapses by itself, so a dead drill runner can never leave an outage behind.

Where a fault is injected (the emulator, the fault proxy, the httpx transport) it is
turned into a `Plan` for one request by `FaultSet.plan` (`chaos.faults.plan`); its type
(`chaos.faults.catalogue`, one module each under `chaos.faults.types`) says what it does.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from chaos.faults.catalogue import FAULT_TYPES

_SCOPE_KEYS = ("route", "model", "feature", "method", "path")
MAX_LEASE_S = 24 * 3600.0
"""A fault lives at most this long (and each renewal gives at most this much more): a client
that forgets a fault, or never gave it a lease, cannot leave an outage behind for good."""
_DAY_MS = MAX_LEASE_S * 1000
# Each parameter's kind and range. Finite numbers only: NaN passes every comparison (a
# ``delay_ms`` of NaN sleeps NaN) and Infinity never lapses; an hour-long ``hang`` is
# already past any client's deadline, a day is the ceiling for everything timed.
_PARAM_RULES: dict[str, tuple[type, float, float]] = {
    "status": (int, 400, 599), "retry_after": (float, 0, MAX_LEASE_S), "after_chunks": (int, 0, 1_000_000),
    "seconds": (float, 0, MAX_LEASE_S), "delay_ms": (float, 0, _DAY_MS), "jitter_ms": (float, 0, _DAY_MS),
    "gap_ms": (float, 0, _DAY_MS), "down_s": (float, 0, MAX_LEASE_S), "up_s": (float, 0, MAX_LEASE_S),
}
_SCOPE_MAX = 1024  # characters in one scope value
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class FaultError(ValueError):
    """A fault definition that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Which requests a fault hits; an unset field matches everything."""

    route: str | None = None  # a provider route, e.g. "openai", "anthropic"
    model: str | None = None
    feature: str | None = None  # the X-AIRisk-Feature request header
    method: str | None = None
    path: str | None = None  # a path prefix below the route

    def matches(self, req: RequestInfo) -> bool:
        return (
            (self.route is None or self.route == req.route)
            and (self.model is None or self.model == req.model)
            and (self.feature is None or self.feature == req.feature)
            and (self.method is None or self.method.upper() == req.method)
            and (self.path is None or req.path.startswith(self.path))
        )


@dataclass(frozen=True, slots=True)
class RequestInfo:
    route: str
    method: str = "POST"
    path: str = ""
    model: str | None = None
    feature: str | None = None


_ids = itertools.count(1)


@dataclass(slots=True)
class Fault:
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    probability: float = 1.0
    scope: Scope = field(default_factory=Scope)
    expires_at: float | None = None  # wall-clock seconds (time.time()); None = until removed
    id: str = ""
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = f"f{next(_ids)}"

    @classmethod
    def from_dict(cls, data: Any, *, now: float | None = None, routes: Collection[str] | None = None) -> Fault:
        """Build from JSON-ish data; `FaultError` names the field and the problem.

        Every value is checked for its type and range here, once, so a fault in force can never
        raise while a request is planned. The lease is ``for_s`` (at most `MAX_LEASE_S`, which is
        also the lease when none is given); a client never sets ``expires_at`` itself. With
        ``routes``, a route outside them is refused (a typo would otherwise inject nothing)."""
        if not isinstance(data, dict):
            raise FaultError("fault: must be an object with at least a 'type'")
        unknown = set(map(str, data)) - {"type", "params", "probability", "scope", "for_s", "id", *_SCOPE_KEYS}
        if "expires_at" in unknown:
            raise FaultError(f"fault.expires_at: set by the server; give for_s, a lease of at most "
                             f"{MAX_LEASE_S:.0f} seconds")
        if unknown:
            raise FaultError(f"fault: unknown field {sorted(unknown)[0]!r}")
        name = data.get("type")
        ftype = FAULT_TYPES.get(name) if isinstance(name, str) else None
        if ftype is None:
            raise FaultError(f"fault.type: unknown fault {show(name)} (known: {', '.join(sorted(FAULT_TYPES))})")
        params = dict(ftype.params)
        given = data.get("params")
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise FaultError("fault.params: must be an object")
        for key, value in given.items():
            if key not in ftype.params:
                known = ", ".join(ftype.params) or "none"
                raise FaultError(f"fault.params.{_clip(key)}: {name} takes no such parameter (takes: {known})")
            params[key] = _param(key, value, ftype.rules)
        for key, allowed in ftype.choices.items():
            if params[key] not in allowed:
                raise FaultError(f"fault.params.{key}: one of {sorted(allowed)}, got {show(params[key])}")
        if (problem := ftype.check(params)) is not None:
            raise FaultError(f"fault.params.{problem}")
        probability = data.get("probability", 1.0)
        if not _number(probability) or not 0 <= probability <= 1:
            raise FaultError(f"fault.probability: must be between 0 and 1, got {show(probability)}")
        scope_given = data.get("scope")
        if scope_given is None:
            scope_given = {}
        if not isinstance(scope_given, dict):
            raise FaultError(f"fault.scope: must be an object with any of {', '.join(_SCOPE_KEYS)}")
        scope_data = dict(scope_given)
        scope_data.update({k: data[k] for k in _SCOPE_KEYS if k in data})
        bad = set(map(str, scope_data)) - set(_SCOPE_KEYS)
        if bad:
            raise FaultError(f"fault.scope: unknown field {sorted(bad)[0]!r} (known: {', '.join(_SCOPE_KEYS)})")
        for key, value in scope_data.items():
            if value is not None and (not isinstance(value, str) or len(value) > _SCOPE_MAX):
                raise FaultError(f"fault.{key}: must be a string of at most {_SCOPE_MAX} characters, "
                                 f"got {show(value)}")
        route = scope_data.get("route")
        if routes is not None and route is not None and route not in routes:
            raise FaultError(f"fault.route: unknown route {show(route)} (known: {', '.join(sorted(routes))})")
        fault_id = data.get("id")
        if fault_id is not None and (not isinstance(fault_id, str) or not _ID.fullmatch(fault_id)):
            raise FaultError(f"fault.id: 1 to 128 letters, digits or _.:- , got {show(fault_id)}")
        for_s = data.get("for_s")
        lease = MAX_LEASE_S if for_s is None else lease_s(for_s, "fault.for_s")
        return cls(
            type=name, params=params, probability=float(probability), scope=Scope(**scope_data),
            expires_at=_expiry(now, lease), id=fault_id or "",
        )

    def renew(self, for_s: Any, *, now: float | None = None) -> None:
        """Extend the lease to ``for_s`` seconds from now (at most `MAX_LEASE_S`); `FaultError` if bad."""
        self.expires_at = _expiry(now, lease_s(for_s, "for_s"))

    def to_dict(self) -> dict[str, Any]:
        scope = {k: getattr(self.scope, k) for k in _SCOPE_KEYS if getattr(self.scope, k) is not None}
        return {
            "id": self.id, "type": self.type, "params": self.params, "probability": self.probability,
            "scope": scope, "expires_at": self.expires_at, "created_at": self.created_at,
        }

    def lapsed(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def lease_s(value: Any, where: str) -> float:
    """A lease in seconds: a finite number above 0, at most `MAX_LEASE_S`."""
    if not _number(value) or not 0 < value <= MAX_LEASE_S:
        raise FaultError(f"{where}: must be a positive number of seconds, at most {MAX_LEASE_S:.0f}, "
                         f"got {show(value)}")
    return float(value)


def _expiry(now: float | None, lease: float) -> float:
    """When a lease from ``now`` ends: at least the next instant the clock can tell from ``now`` (a
    lease of 1e-200 s added to the time is the time itself: a fault lapsed as it is made)."""
    start = time.time() if now is None else now
    return max(start + lease, math.nextafter(start, math.inf))


def _number(value: Any) -> bool:
    """A finite int or float; a bool is not a number here (JSON true is no delay)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _param(key: str, value: Any, rules: dict[str, tuple[type, float, float]]) -> Any:
    """A parameter's value, checked by its fault type's own rule for it, else the shared one by name."""
    rule = rules.get(key) or _PARAM_RULES.get(key)
    if rule is None:  # a string parameter (stream_error's error), checked by its fault
        if not isinstance(value, str):
            raise FaultError(f"fault.params.{key}: must be a string, got {show(value)}")
        return value
    kind, low, high = rule
    if not _number(value):
        raise FaultError(f"fault.params.{key}: must be a number, got {show(value)}")
    if kind is int and value != int(value):
        raise FaultError(f"fault.params.{key}: must be a whole number, got {show(value)}")
    if value < 0:
        raise FaultError(f"fault.params.{key}: must not be negative")
    if not low <= value <= high:
        raise FaultError(f"fault.params.{key}: must be between {low:g} and {high:g}, got {show(value)}")
    return int(value) if kind is int else value


def _clip(text: Any, limit: int = 60) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def show(value: Any) -> str:
    """A value as an error message quotes it: short, whatever its size."""
    return _clip(repr(value))
