"""Chaos Toolkit actions: faults on airisk's fault proxy or emulator, through its control API.

``url`` is the server's root (``http://127.0.0.1:8480``), as ``airisk fault --at`` takes it. A fault is
leased (``lease_s``): if the experiment dies before its rollback, the fault still lapses by itself.
Typed arguments without ``from __future__ import annotations``: `chaos discover` reads the types.
"""

from typing import Any

from chaos.control.client import ControlClient, ControlError, Refused
from chaos.faults import Fault, FaultError
from chaosairisk.errors import AiriskActivityFailed

__all__ = ["add_fault", "remove_faults", "reset"]


def _control(url: str, timeout_s: float) -> ControlClient:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise AiriskActivityFailed(f"url: must start with http:// or https://, got {url!r}")
    return ControlClient(url, timeout=timeout_s)


def add_fault(url: str, fault_type: str, route: str = "", feature: str = "", model: str = "",
              probability: float = 1.0, lease_s: float = 300.0, params: dict = None,  # noqa: RUF013
              timeout_s: float = 5.0) -> dict:
    """Add one fault at ``url`` for ``lease_s`` seconds and return it as the server holds it (with its ``id``).

    ``fault_type`` is a name from ``airisk fault types`` (``overloaded``, ``rate_limited``, ``hang``, ...);
    ``route`` the provider it hits (``openai``, ``anthropic``, ...; empty: every route); ``feature`` only
    requests sent with ``X-AIRisk-Feature: <feature>``; ``model`` only that model; ``params`` the fault
    type's parameters (e.g. ``{"retry_after": 5}``)."""
    fault: dict[str, Any] = {"type": fault_type, "probability": probability, "for_s": lease_s,
                             "params": dict(params or {})}
    fault.update({k: v for k, v in (("route", route), ("feature", feature), ("model", model)) if v})
    try:  # checked here too: a value JSON cannot carry (NaN) never reaches the wire
        Fault.from_dict(fault)
    except FaultError as exc:
        raise AiriskActivityFailed(f"airisk add_fault {fault_type} at {url}: {exc}") from None
    with _control(url, timeout_s) as control:
        try:
            return control.add(fault)
        except ControlError as exc:
            raise AiriskActivityFailed(f"airisk add_fault {fault_type} at {url}: {exc}") from None


def remove_faults(url: str, fault_id: str = "", timeout_s: float = 5.0) -> dict:
    """Remove the fault ``fault_id`` at ``url``, or every fault there when it is empty; returns
    ``{"removed": n}``. A fault already gone (its lease ran out) counts as removed: a rollback must not fail
    because the lease did its job."""
    with _control(url, timeout_s) as control:
        try:
            if not fault_id:
                return {"removed": control.clear()}
            control.remove(fault_id)  # one call: a list, then a remove, could race the lease
            return {"removed": 1}
        except Refused as exc:
            if exc.status == 404:
                return {"removed": 0}
            raise AiriskActivityFailed(f"airisk remove_faults at {url}: {exc}") from None
        except ControlError as exc:
            raise AiriskActivityFailed(f"airisk remove_faults at {url}: {exc}") from None


def reset(url: str, timeout_s: float = 5.0) -> dict:
    """Reset the server at ``url``: every fault removed, and whatever else it resets (the emulator's
    profiles and status pages); returns its answer, ``{"reset": true, "removed": n}``."""
    with _control(url, timeout_s) as control:
        try:
            return control.reset()
        except ControlError as exc:
            raise AiriskActivityFailed(f"airisk reset at {url}: {exc}") from None
