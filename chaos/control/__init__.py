"""The control API under ``/_airisk/``, one for the emulator and the fault proxy alike.

- `api`: the framework-free API (`ControlAPI`: guard, body, dispatch; the common verbs).
- `emulatorside`, `proxyside`: the verbs only one side has, and each side's `ControlAPI`.
- `aiohttpmount`: the emulator's mount; the proxy's is `chaos.proxycontrol`.
- `changes`, `timeline`: what the emulator's own verbs change, and its fault scripts.
- `client`: `ControlClient`, what ``airisk fault``, the drill runner and the tests call it with.

The names below were importable from the single module ``chaos.control`` and still are. The
aiohttp mount is imported only when asked for (`__getattr__`), so the proxy's side of the API
and the client load no aiohttp.
"""

from __future__ import annotations

from typing import Any

from chaos.control.api import PREFIX, ControlAPI, Reply, Request
from chaos.control.changes import (
    MAX_INCIDENTS,
    MAX_UPDATES,
    apply_add,
    apply_listing,
    apply_profile,
    apply_status,
    check_listing,
    check_profile,
    check_status,
    profile_fields,
)
from chaos.control.timeline import (
    MAX_STEPS,
    MIN_REPEAT_PERIOD_S,
    Script,
    run_timeline,
    validate_script,
    validate_timeline,
)

_MOUNT = ("add_routes",)


def __getattr__(name: str) -> Any:
    if name in _MOUNT:
        from chaos.control import aiohttpmount

        return getattr(aiohttpmount, name)
    raise AttributeError(f"module 'chaos.control' has no attribute {name!r}")


__all__ = ["MAX_INCIDENTS", "MAX_STEPS", "MAX_UPDATES", "MIN_REPEAT_PERIOD_S", "PREFIX", "ControlAPI", "Reply",
           "Request", "Script", "add_routes", "apply_add", "apply_listing", "apply_profile", "apply_status",
           "check_listing", "check_profile", "check_status", "profile_fields", "run_timeline",
           "validate_script", "validate_timeline"]
