"""What the emulator's own control verbs change (model listings, latency profiles, status pages,
faults added by a timeline), each checked whole before any of it applies, so a bad request
changes nothing. ValueError names the field.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Protocol

from chaos.emulator_profile import Profile
from chaos.faults import Fault, FaultSet
from chaos.requestlog import RequestLog
from chaos.statuspage import INDICATORS, STAGES
from probes.catalog import CATALOG


class Emulator(Protocol):
    """What the control API uses of `chaos.emulator.Emulator`: written here, so that the control
    package does not import the emulator (which mounts it) even for type checking."""

    faults: FaultSet
    log: RequestLog
    guard: Any  # a chaos.controlguard.ControlGuard
    default_profile: Any
    profiles: dict[str, Any]
    pages: dict[str, Any]
    listings: Any
    timeline: Any

    def reset(self) -> None: ...


MAX_INCIDENTS = 200  # per emulated status page; the oldest resolved ones go first
MAX_UPDATES = 200  # per incident
_TEXT_MAX = 10_000  # characters in an incident's name or update


def apply_add(emu: Emulator, data: Any) -> Fault:
    return emu.faults.add(Fault.from_dict(data, routes=CATALOG))


_LISTING_KEYS = ("model", "listed", "retires")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MODEL_MAX = 256  # characters in a model id, as `probes.dialects.base.MODEL_NAME_LIMIT`


def apply_listing(emu: Emulator, route: str, data: Any) -> dict[str, Any]:
    change = check_listing(route, data)
    emu.listings.set(route, change["model"], listed=change["listed"], retires=change["retires"])
    return change


def check_listing(route: Any, data: Any) -> dict[str, Any]:
    """The listing change ``data`` for ``route`` as ``{"model", "listed", "retires"}``, checked whole;
    ValueError naming the field otherwise."""
    if route not in CATALOG:
        raise ValueError(f"models.route: unknown route {str(route)[:60]!r} (known: {', '.join(sorted(CATALOG))})")
    if not isinstance(data, dict):
        raise ValueError("models: must be an object")
    for key in data:
        if key not in _LISTING_KEYS:
            raise ValueError(f"models.{str(key)[:60]}: unknown field (known: {', '.join(_LISTING_KEYS)})")
    model = data.get("model")
    if not isinstance(model, str) or not 0 < len(model) <= _MODEL_MAX or not model.isprintable():
        raise ValueError(f"models.model: must be a model id of 1 to {_MODEL_MAX} printable characters, "
                         f"got {str(model)[:60]!r}")
    listed = data.get("listed", True)
    if not isinstance(listed, bool):
        raise ValueError(f"models.listed: must be true or false, got {str(listed)[:60]!r}")
    retires = data.get("retires")
    if retires is not None:
        if not isinstance(retires, str) or not _DAY.fullmatch(retires):
            raise ValueError(f"models.retires: must be a date YYYY-MM-DD or null, got {str(retires)[:60]!r}")
        try:
            day = date.fromisoformat(retires)
        except ValueError:
            raise ValueError(f"models.retires: not a date YYYY-MM-DD: {retires!r}") from None
        if not 2000 <= day.year <= 2200:
            raise ValueError(f"models.retires: year must be 2000 to 2200, got {day.year}")
        retires = day.isoformat()
    return {"model": model, "listed": listed, "retires": retires}



def apply_profile(emu: Emulator, route: str, data: Any):
    changes = check_profile(route, data)
    if route == "*":
        emu.default_profile.update(changes)
        return emu.default_profile
    profile = emu.profiles.get(route) or type(emu.default_profile)(**profile_fields(emu.default_profile))
    profile.update(changes)
    emu.profiles[route] = profile
    return profile


def check_profile(route: Any, data: Any) -> dict[str, Any]:
    """The profile change ``data`` for ``route``, checked whole before any of it applies."""
    if route != "*" and route not in CATALOG:
        raise ValueError(f"profile.route: unknown route {str(route)[:60]!r}")
    if not isinstance(data, dict):
        raise ValueError("profile: must be an object")
    for key, value in data.items():
        Profile.check(key, value)
    return data


def profile_fields(profile) -> dict[str, Any]:
    return {k: getattr(profile, k) for k in profile.__dataclass_fields__}



def apply_status(emu: Emulator, provider: str, data: Any) -> dict[str, Any]:
    check_status(provider, data)
    page = emu.pages[provider]
    if data.get("resolve"):
        return {"resolved": page.resolve_all(data.get("body") or "This incident has been resolved.")}
    incident = page.post(name=data["name"], impact=data.get("impact", "major"),
                         stage=data.get("stage", "investigating"), body=data.get("body", ""))
    _trim(page, incident)
    return incident.to_dict(page.page_id)


def check_status(provider: Any, data: Any) -> None:
    """A status-page post for ``provider``, checked before anything is posted."""
    if provider not in CATALOG:
        raise ValueError(f"status.provider: unknown provider {str(provider)[:60]!r}")
    if not isinstance(data, dict):
        raise ValueError("status: must be an object")
    unknown = set(map(str, data)) - {"name", "impact", "stage", "body", "resolve"}
    if unknown:
        raise ValueError(f"status: unknown field {sorted(unknown)[0][:60]!r} (known: name, impact, stage, body, "
                         "resolve)")
    if "resolve" in data and not isinstance(data["resolve"], bool):
        raise ValueError("status.resolve: must be true or false")
    body = data.get("body", "")
    if not isinstance(body, str) or len(body) > _TEXT_MAX:
        raise ValueError(f"status.body: must be a string of at most {_TEXT_MAX} characters")
    if data.get("resolve"):
        return
    name = data.get("name")
    if not isinstance(name, str) or not name or len(name) > _TEXT_MAX:
        raise ValueError("status.name: required, the incident's title")
    if data.get("impact", "major") not in INDICATORS:
        raise ValueError(f"status.impact: one of {', '.join(INDICATORS)}, got {str(data.get('impact'))[:60]!r}")
    if data.get("stage", "investigating") not in STAGES:
        raise ValueError(f"status.stage: one of {', '.join(STAGES)}, got {str(data.get('stage'))[:60]!r}")


def _trim(page, incident) -> None:
    """Keep a page's history bounded however many posts it gets (oldest resolved incidents go first)."""
    if len(incident.updates) > MAX_UPDATES:
        del incident.updates[1:len(incident.updates) - MAX_UPDATES + 1]  # the first update says when it began
    while len(page.incidents) > MAX_INCIDENTS:
        resolved = [i for i in page.incidents if i.stage == "resolved"]
        page.incidents.remove(resolved[-1] if resolved else page.incidents[-1])
