"""The emulator's control API: the common verbs (`chaos.control.api`) over its faults and request
log, and the verbs only it has:

    GET    /_airisk/profiles               latency profile per route
    PUT    /_airisk/profiles/{route}       change one ("*" for the default)
    POST   /_airisk/status/{provider}      post to the emulated status page: {"name", "impact", "stage",
                                           "body"} or {"resolve": true}
    POST   /_airisk/timeline               run a script: {"steps": [{"at": s, "add"|"remove"|"clear"|
                                           "status"|"profile": ...}], "repeat": false, "period": s} -> 202
    GET    /_airisk/models                 what was set on each route's model listing
    PUT    /_airisk/models/{route}         set one model of a route's listing: {"model", "listed": true|false,
                                           "retires": "YYYY-MM-DD"|null} (removed from the listing, or
                                           listed with a retirement date; added when not yet listed)

Its faults may name any catalog route; its reset also restores the default profiles, the
listings and the status pages and stops the timeline (`Emulator.reset`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from chaos.control.api import ControlAPI, Reply, Request
from chaos.control.changes import Emulator, apply_listing, apply_profile, apply_status
from chaos.control.timeline import run_timeline, validate_script
from chaos.emulator_profile import profile_dict
from probes.catalog import CATALOG


def emulator_api(emu: Emulator) -> ControlAPI:
    """The control API of ``emu``."""

    def profiles(request: Request, path: dict[str, str]) -> dict[str, Any]:
        data = {"*": profile_dict(emu.default_profile)}
        data.update({route: profile_dict(p) for route, p in emu.profiles.items()})
        return data

    def put_profile(request: Request, path: dict[str, str]) -> dict[str, Any]:
        return profile_dict(apply_profile(emu, path["route"], request.json()))

    def post_status(request: Request, path: dict[str, str]) -> dict[str, Any]:
        return apply_status(emu, path["provider"], request.json())

    def timeline(request: Request, path: dict[str, str]) -> Reply:
        script = validate_script(request.json())
        if emu.timeline is not None:
            emu.timeline.cancel()
        emu.timeline = asyncio.get_running_loop().create_task(
            run_timeline(emu, script.steps, repeat=script.repeat, period=script.period))
        return Reply(202, {"steps": len(script.steps)})

    def put_model(request: Request, path: dict[str, str]) -> dict[str, Any]:
        route = path["route"]
        change = apply_listing(emu, route, request.json())
        listed = [{"id": e.name, "retires": e.retires} for e in emu.listings.models(route, CATALOG[route].model)]
        return {**change, "route": route, "listing": listed}

    return ControlAPI(
        faults=emu.faults, log=emu.log, routes=lambda: CATALOG, guard=lambda: emu.guard, reset=emu.reset,
        health=lambda: {p.name: p.emulator_prefix for p in CATALOG.values()},
        verbs=(("GET", "profiles", profiles), ("PUT", "profiles/{route}", put_profile),
               ("POST", "status/{provider}", post_status), ("POST", "timeline", timeline),
               ("GET", "models", lambda r, p: emu.listings.to_dict()), ("PUT", "models/{route}", put_model)))
