"""The fault proxy's control API: the common verbs (`chaos.control.api`) over its faults and
request log, and the verbs only it has:

    GET    /_airisk/routes                 each route's upstream and dialect
    DELETE /_airisk/log                    empty the request log
    GET    /_airisk/capture                what ``airisk proxy --capture`` keeps: per feature its N and how
                                           many are taken, what waits, what was written, dropped or skipped

Its faults may name its own routes (``--route`` included); its reset removes the faults only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from chaos.control.api import ControlAPI
from chaos.controlguard import ControlGuard
from chaos.faults import FaultSet
from chaos.requestlog import RequestLog


class FaultProxy(Protocol):
    """What the control API uses of `chaos.proxy.FaultProxy`: written here, so that the control
    package does not import the proxy (which mounts it) even for type checking."""

    faults: FaultSet
    log: RequestLog
    routes: Mapping[str, Any]  # name -> chaos.routes.Route
    capture: Any  # a chaos.proxycapture.Capture or None


def proxy_api(proxy: FaultProxy, guard: Callable[[], ControlGuard]) -> ControlAPI:
    return ControlAPI(
        faults=proxy.faults, log=proxy.log, routes=lambda: proxy.routes, guard=guard,
        health=lambda: {name: r.upstream for name, r in proxy.routes.items()},
        verbs=(
            ("GET", "routes", lambda r, p: {name: {"upstream": route.upstream, "dialect": route.dialect,
                                                   "local": route.local} for name, route in proxy.routes.items()}),
            ("DELETE", "log", lambda r, p: {"removed": proxy.log.clear()}),
            ("GET", "capture", lambda r, p: proxy.capture.summary() if proxy.capture is not None
             else {"features": {}}),
        ))
