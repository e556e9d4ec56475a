"""The emulator's JSON control API, under ``/_airisk/``.

    GET    /_airisk/health                 routes served, faults in force
    GET    /_airisk/fault-types            the fault catalogue with parameters and defaults
    GET    /_airisk/faults                 faults in force (lapsed leases are dropped)
    POST   /_airisk/faults                 add one: {"type", "params", "probability", "route", "model",
                                           "feature", "for_s"} -> 201 with its id
    DELETE /_airisk/faults/{id}            remove one
    DELETE /_airisk/faults                 remove all
    GET    /_airisk/profiles               latency profile per route
    PUT    /_airisk/profiles/{route}       change one ("*" for the default)
    POST   /_airisk/status/{provider}      post to the emulated status page: {"name", "impact", "stage",
                                           "body"} or {"resolve": true}
    POST   /_airisk/timeline               run a script: {"steps": [{"at": s, "add"|"remove"|"clear"|
                                           "status"|"profile": ...}], "repeat": false}
    GET    /_airisk/log?limit=N            the latest requests with the faults they met
    POST   /_airisk/reset                  no faults, default profiles, all incidents resolved, no timeline

Errors are ``{"error": "<field>: <problem>"}`` with status 400 (404 for unknown ids).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from chaos.faults import Fault, FaultError
from probes.catalog import CATALOG

if TYPE_CHECKING:
    from chaos.emulator import Emulator

PREFIX = "/_airisk"
_STEP_ACTIONS = ("add", "remove", "clear", "status", "profile")


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text=json.dumps({"error": "body: not valid JSON"}),
                                 content_type="application/json") from None


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
            steps = validate_timeline(data)
        except ValueError as exc:
            return _error(str(exc))
        if emu.timeline is not None:
            emu.timeline.cancel()
        emu.timeline = asyncio.create_task(run_timeline(emu, steps, repeat=bool(data.get("repeat"))))
        return web.json_response({"steps": len(steps)}, status=202)

    async def log(request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return _error("limit: must be a whole number")
        return web.json_response(list(emu.log)[-limit:])

    async def reset(request: web.Request) -> web.Response:
        emu.reset()
        return web.json_response({"reset": True})

    r = app.router
    r.add_get(f"{PREFIX}/health", health)
    r.add_get(f"{PREFIX}/fault-types", fault_types)
    r.add_get(f"{PREFIX}/faults", list_faults)
    r.add_post(f"{PREFIX}/faults", add_fault)
    r.add_delete(f"{PREFIX}/faults/{{id}}", remove_fault)
    r.add_delete(f"{PREFIX}/faults", clear_faults)
    r.add_get(f"{PREFIX}/profiles", profiles)
    r.add_put(f"{PREFIX}/profiles/{{route}}", put_profile)
    r.add_post(f"{PREFIX}/status/{{provider}}", post_status)
    r.add_post(f"{PREFIX}/timeline", timeline)
    r.add_get(f"{PREFIX}/log", log)
    r.add_post(f"{PREFIX}/reset", reset)


def apply_add(emu: Emulator, data: Any) -> Fault:
    return emu.faults.add(Fault.from_dict(data, routes=CATALOG))


def apply_profile(emu: Emulator, route: str, data: Any):
    from chaos.emulator import Profile

    if not isinstance(data, dict):
        raise ValueError("profile: must be an object")
    if route == "*":
        emu.default_profile.update(data)
        return emu.default_profile
    if route not in CATALOG:
        raise ValueError(f"profile.route: unknown route {route!r}")
    profile = emu.profiles.get(route) or Profile(**profile_fields(emu.default_profile))
    profile.update(data)
    emu.profiles[route] = profile
    return profile


def profile_fields(profile) -> dict[str, Any]:
    return {k: getattr(profile, k) for k in profile.__dataclass_fields__}


def apply_status(emu: Emulator, provider: str, data: Any) -> dict[str, Any]:
    page = emu.pages.get(provider)
    if page is None:
        raise ValueError(f"status.provider: unknown provider {provider!r}")
    if not isinstance(data, dict):
        raise ValueError("status: must be an object")
    if data.get("resolve"):
        return {"resolved": page.resolve_all(str(data.get("body", "This incident has been resolved.")))}
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("status.name: required, the incident's title")
    incident = page.post(name=name, impact=str(data.get("impact", "major")),
                         stage=str(data.get("stage", "investigating")), body=str(data.get("body", "")))
    return incident.to_dict(page.page_id)


def validate_timeline(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ValueError("timeline.steps: required, a list of steps")
    steps = []
    for i, step in enumerate(data["steps"]):
        where = f"timeline.steps[{i}]"
        if not isinstance(step, dict):
            raise ValueError(f"{where}: must be an object")
        at = step.get("at")
        if not isinstance(at, int | float) or at < 0:
            raise ValueError(f"{where}.at: seconds from the start, a number >= 0")
        actions = [a for a in _STEP_ACTIONS if a in step]
        if len(actions) != 1 or set(step) - {"at", *_STEP_ACTIONS}:
            raise ValueError(f"{where}: exactly one of {', '.join(_STEP_ACTIONS)} besides 'at'")
        if actions[0] == "add":
            try:
                Fault.from_dict(step["add"])
            except FaultError as exc:
                raise ValueError(f"{where}.add: {exc}") from None
        steps.append(step)
    return sorted(steps, key=lambda s: s["at"])


async def run_timeline(emu: Emulator, steps: list[dict[str, Any]], *, repeat: bool = False) -> None:
    """Apply each step at its time; a step's faults are tagged so later steps can remove them."""
    loop = asyncio.get_running_loop()
    period = (steps[-1]["at"] if steps else 0) + 1e-9
    while True:
        start = loop.time()
        added: dict[str, str] = {}
        for step in steps:
            await asyncio.sleep(max(0.0, start + step["at"] - loop.time()))
            if "add" in step:
                fault = apply_add(emu, step["add"])
                added[str(step["add"].get("id") or fault.id)] = fault.id
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
        if not repeat or not steps:
            return
        await asyncio.sleep(max(0.0, start + period - loop.time()))
