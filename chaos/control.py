"""The emulator's JSON control API, under ``/_airisk/``.

    GET    /_airisk/health                 routes served, faults in force
    GET    /_airisk/fault-types            the fault catalogue with parameters and defaults
    GET    /_airisk/faults                 faults in force (lapsed leases are dropped)
    POST   /_airisk/faults                 add one: {"type", "params", "probability", "route", "model",
                                           "feature", "for_s"} -> 201 with its id
    POST   /_airisk/faults/{id}/renew      extend its lease: {"for_s"}
    DELETE /_airisk/faults/{id}            remove one
    DELETE /_airisk/faults                 remove all
    GET    /_airisk/profiles               latency profile per route
    PUT    /_airisk/profiles/{route}       change one ("*" for the default)
    POST   /_airisk/status/{provider}      post to the emulated status page: {"name", "impact", "stage",
                                           "body"} or {"resolve": true}
    POST   /_airisk/timeline               run a script: {"steps": [{"at": s, "add"|"remove"|"clear"|
                                           "status"|"profile": ...}], "repeat": false, "period": s}
    GET    /_airisk/log?limit=N            the latest requests with the faults they met
    GET    /_airisk/models                 what was set on each route's model listing
    PUT    /_airisk/models/{route}         set one model of a route's listing: {"model", "listed": true|false,
                                           "retires": "YYYY-MM-DD"|null} (removed from the listing, or
                                           listed with a retirement date; added when not yet listed)
    POST   /_airisk/reset                  no faults, default profiles, all incidents resolved, no timeline

Errors are ``{"error": "<field>: <problem>"}`` with status 400 (404 for unknown ids). Every
request passes `chaos.controlguard` first (403 another host or origin, 401 no token where one
is needed, 415 a body that is not JSON, 413 a body over ``MAX_BODY``). Everything a request or a
timeline step carries is validated before any of it is applied, so a bad one changes nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import re
from datetime import date
from typing import TYPE_CHECKING, Any

from aiohttp import web

from chaos.controlguard import MAX_BODY
from chaos.faults import MAX_LEASE_S, Fault, FaultError
from chaos.statuspage import INDICATORS, STAGES
from probes.catalog import CATALOG

if TYPE_CHECKING:
    from chaos.emulator import Emulator

log = logging.getLogger(__name__)
PREFIX = "/_airisk"
_timelines = itertools.count(1)
_STEP_ACTIONS = ("add", "remove", "clear", "status", "profile")
MIN_REPEAT_PERIOD_S = 1.0  # a repeating timeline adds its faults at most once a second
MAX_STEPS = 10_000
MAX_INCIDENTS = 200  # per emulated status page; the oldest resolved ones go first
MAX_UPDATES = 200  # per incident
_TEXT_MAX = 10_000  # characters in an incident's name or update


def _error(message: str, status: int = 400, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _http_error(message: str, status: int) -> web.HTTPException:
    exc = web.HTTPException(text=json.dumps({"error": message}), content_type="application/json")
    exc.set_status(status)
    return exc


async def _json(request: web.Request) -> Any:
    """The body as JSON, read up to `MAX_BODY` bytes (413 past it, 400 if not JSON)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _http_error(f"body: larger than {MAX_BODY} bytes", 413)
    raw = bytearray()
    async for chunk in request.content.iter_any():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise _http_error(f"body: larger than {MAX_BODY} bytes", 413)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _http_error("body: not valid JSON", 400) from None


def guard_middleware(emu: Emulator):
    """Check every control request (`chaos.controlguard`) before its handler runs."""

    @web.middleware
    async def guard(request: web.Request, handler):
        if not request.path.startswith(PREFIX + "/"):
            return await handler(request)
        headers = request.headers
        refusal = emu.guard.check(host=headers.get("Host"), origin=headers.get("Origin"),
                                  content_type=headers.get("Content-Type"),
                                  authorization=headers.get("Authorization"), has_body=request.body_exists)
        if refusal is not None:
            return _error(refusal.message, refusal.status, refusal.headers)
        return await handler(request)

    return guard


def add_routes(app: web.Application, emu: Emulator) -> None:
    from chaos.emulator import known_fault_types, profile_dict

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "routes": {p.name: p.emulator_prefix for p in CATALOG.values()},
                                  "faults": len(emu.faults.active())})

    async def fault_types(request: web.Request) -> web.Response:
        return web.json_response(known_fault_types())

    async def list_faults(request: web.Request) -> web.Response:
        return web.json_response([f.to_dict() for f in emu.faults.active()])

    async def add_fault(request: web.Request) -> web.Response:
        try:
            fault = apply_add(emu, await _json(request))
        except FaultError as exc:
            return _error(str(exc))
        return web.json_response(fault.to_dict(), status=201)

    async def renew_fault(request: web.Request) -> web.Response:
        fault_id = request.match_info["id"]
        data = await _json(request)
        fault = next((f for f in emu.faults.active() if f.id == fault_id), None)
        if fault is None:
            return _error(f"fault {fault_id!r}: no such fault (its lease may have ended)", 404)
        try:
            fault.renew(data.get("for_s") if isinstance(data, dict) else None)
        except FaultError as exc:
            return _error(str(exc))
        return web.json_response(fault.to_dict())

    async def remove_fault(request: web.Request) -> web.Response:
        if not emu.faults.remove(request.match_info["id"]):
            return _error(f"fault {request.match_info['id']!r}: no such fault", 404)
        return web.json_response({"removed": request.match_info["id"]})

    async def clear_faults(request: web.Request) -> web.Response:
        return web.json_response({"removed": emu.faults.clear()})

    async def profiles(request: web.Request) -> web.Response:
        data = {"*": profile_dict(emu.default_profile)}
        data.update({route: profile_dict(p) for route, p in emu.profiles.items()})
        return web.json_response(data)

    async def put_profile(request: web.Request) -> web.Response:
        try:
            profile = apply_profile(emu, request.match_info["route"], await _json(request))
        except ValueError as exc:
            return _error(str(exc))
        return web.json_response(profile_dict(profile))

    async def post_status(request: web.Request) -> web.Response:
        try:
            return web.json_response(apply_status(emu, request.match_info["provider"], await _json(request)))
        except ValueError as exc:
            return _error(str(exc))

    async def timeline(request: web.Request) -> web.Response:
        data = await _json(request)
        try:
            script = validate_script(data)
        except ValueError as exc:
            return _error(str(exc))
        if emu.timeline is not None:
            emu.timeline.cancel()
        emu.timeline = asyncio.create_task(run_timeline(emu, script.steps, repeat=script.repeat,
                                                        period=script.period))
        return web.json_response({"steps": len(script.steps)}, status=202)

    async def log(request: web.Request) -> web.Response:
        raw = request.query.get("limit", "100")
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            return _error(f"limit: must be a whole number, got {raw[:20]!r}")
        limit = int(raw)
        return web.json_response(list(emu.log)[-limit:] if limit else [])

    async def list_models(request: web.Request) -> web.Response:
        return web.json_response(emu.listings.to_dict())

    async def put_model(request: web.Request) -> web.Response:
        route = request.match_info["route"]
        try:
            change = apply_listing(emu, route, await _json(request))
        except ValueError as exc:
            return _error(str(exc))
        listed = [{"id": e.name, "retires": e.retires} for e in emu.listings.models(route, CATALOG[route].model)]
        return web.json_response({**change, "route": route, "listing": listed})

    async def reset(request: web.Request) -> web.Response:
        emu.reset()
        return web.json_response({"reset": True})

    r = app.router
    r.add_get(f"{PREFIX}/health", health)
    r.add_get(f"{PREFIX}/fault-types", fault_types)
    r.add_get(f"{PREFIX}/faults", list_faults)
    r.add_post(f"{PREFIX}/faults", add_fault)
    r.add_post(f"{PREFIX}/faults/{{id}}/renew", renew_fault)
    r.add_delete(f"{PREFIX}/faults/{{id}}", remove_fault)
    r.add_delete(f"{PREFIX}/faults", clear_faults)
    r.add_get(f"{PREFIX}/profiles", profiles)
    r.add_put(f"{PREFIX}/profiles/{{route}}", put_profile)
    r.add_post(f"{PREFIX}/status/{{provider}}", post_status)
    r.add_post(f"{PREFIX}/timeline", timeline)
    r.add_get(f"{PREFIX}/log", log)
    r.add_post(f"{PREFIX}/reset", reset)
    r.add_get(f"{PREFIX}/models", list_models)
    r.add_put(f"{PREFIX}/models/{{route}}", put_model)


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
    from chaos.emulator import Profile

    changes = check_profile(route, data)
    if route == "*":
        emu.default_profile.update(changes)
        return emu.default_profile
    profile = emu.profiles.get(route) or Profile(**profile_fields(emu.default_profile))
    profile.update(changes)
    emu.profiles[route] = profile
    return profile


def check_profile(route: Any, data: Any) -> dict[str, Any]:
    """The profile change ``data`` for ``route``, checked whole before any of it applies."""
    from chaos.emulator import Profile

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


class Script:
    """A validated timeline: steps sorted by time, and how it repeats."""

    __slots__ = ("period", "repeat", "steps")

    def __init__(self, steps: list[dict[str, Any]], repeat: bool, period: float) -> None:
        self.steps, self.repeat, self.period = steps, repeat, period


def validate_timeline(data: Any) -> list[dict[str, Any]]:
    """The steps of a timeline, each action checked as it will be applied (`validate_script`)."""
    return validate_script(data).steps


def validate_script(data: Any) -> Script:
    """Check a whole timeline before any of it runs: every step's time and action, and, for a
    repeating one, a period of at least `MIN_REPEAT_PERIOD_S` (steps all at 0 would otherwise
    add faults in a busy loop)."""
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ValueError("timeline.steps: required, a list of steps")
    unknown = set(map(str, data)) - {"steps", "repeat", "period"}
    if unknown:
        raise ValueError(f"timeline: unknown field {sorted(unknown)[0][:60]!r} (known: steps, repeat, period)")
    if len(data["steps"]) > MAX_STEPS:
        raise ValueError(f"timeline.steps: at most {MAX_STEPS} steps")
    repeat = data.get("repeat", False)
    if not isinstance(repeat, bool):
        raise ValueError("timeline.repeat: must be true or false")
    steps = []
    for i, step in enumerate(data["steps"]):
        where = f"timeline.steps[{i}]"
        if not isinstance(step, dict):
            raise ValueError(f"{where}: must be an object")
        at = step.get("at")
        if not _seconds(at) or at < 0:
            raise ValueError(f"{where}.at: seconds from the start, a number >= 0")
        actions = [a for a in _STEP_ACTIONS if a in step]
        if len(actions) != 1 or set(map(str, step)) - {"at", *_STEP_ACTIONS}:
            raise ValueError(f"{where}: exactly one of {', '.join(_STEP_ACTIONS)} besides 'at'")
        try:
            _check_action(actions[0], step[actions[0]])
        except ValueError as exc:
            raise ValueError(f"{where}.{actions[0]}: {exc}") from None
        steps.append(step)
    steps.sort(key=lambda s: s["at"])
    last = steps[-1]["at"] if steps else 0.0
    period = data.get("period", last)
    if not _seconds(period) or period < last:
        raise ValueError(f"timeline.period: seconds, at least the last step's time ({last:g})")
    if repeat and period < MIN_REPEAT_PERIOD_S:
        raise ValueError(f"timeline.period: a repeating timeline needs a period of at least "
                         f"{MIN_REPEAT_PERIOD_S:g} s (give 'period', or a last step at >= {MIN_REPEAT_PERIOD_S:g} s)")
    return Script(steps, repeat, float(period))


def _seconds(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            and value <= MAX_LEASE_S)


def _check_action(action: str, value: Any) -> None:
    if action == "add":
        Fault.from_dict(value, routes=CATALOG)
    elif action == "remove":
        if not isinstance(value, str) or not value:
            raise ValueError("the id of a fault to remove (a step's add.id, or a fault's id)")
    elif action == "clear":
        if value is not True:
            raise ValueError("must be true")
    elif action == "status":
        if not isinstance(value, dict):
            raise ValueError("must be an object with a 'provider'")
        rest = {k: v for k, v in value.items() if k != "provider"}
        check_status(value.get("provider"), rest)
    elif action == "profile":
        if not isinstance(value, dict):
            raise ValueError("must be an object")
        rest = {k: v for k, v in value.items() if k != "route"}
        check_profile(value.get("route", "*"), rest)


async def run_timeline(emu: Emulator, steps: list[dict[str, Any]], *, repeat: bool = False,
                       period: float | None = None) -> None:
    """Apply each step of a validated script at its time; a step's faults are tagged so later steps
    can remove them. Each round of a repeating one starts ``period`` after the last (at least
    `MIN_REPEAT_PERIOD_S`); an add without an id keeps the same id every round, so repeating
    replaces the round before's fault rather than piling up more."""
    loop = asyncio.get_running_loop()
    last = steps[-1]["at"] if steps else 0.0
    period = max(last if period is None else period, MIN_REPEAT_PERIOD_S if repeat else 0.0)
    tag = f"t{next(_timelines)}"
    while True:
        start = loop.time()
        added: dict[str, str] = {}
        for index, step in enumerate(steps):
            await asyncio.sleep(max(0.0, start + step["at"] - loop.time()))
            try:
                _apply_step(emu, step, added, f"{tag}s{index}")
            except ValueError as exc:  # validated; this is a bug, and the next step still runs
                log.error("timeline step %d (%s): %s", index, step, exc)
        if not repeat or not steps:
            return
        await asyncio.sleep(max(0.0, start + period - loop.time()))


def _apply_step(emu: Emulator, step: dict[str, Any], added: dict[str, str], own_id: str) -> None:
    if "add" in step:
        given = step["add"].get("id")
        fault = apply_add(emu, {**step["add"], "id": given or own_id})
        added[str(given or own_id)] = fault.id
    elif "remove" in step:
        emu.faults.remove(added.get(str(step["remove"]), str(step["remove"])))
    elif "clear" in step:
        emu.faults.clear()
    elif "status" in step:
        status = dict(step["status"])
        apply_status(emu, str(status.pop("provider", "")), status)
    elif "profile" in step:
        profile = dict(step["profile"])
        apply_profile(emu, str(profile.pop("route", "*")), profile)
