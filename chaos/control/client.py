"""`ControlClient`: the control API (`chaos.control.api`) from Python, synchronously, for
``airisk fault``, the drill runner and the tests. The emulator and the proxy answer it alike.

It sends ``Authorization: Bearer $AIRISK_CONTROL_TOKEN`` when that is set (a control API served
with ``--allow-external`` takes no request without it; `chaos.controlguard`), and to control
APIs only. A failure is one of three `ControlError`s, so a caller can word each for its user:
`Unreachable` (no answer: the `httpx.HTTPError` is its cause), `NotJSON` (something else
answered), `Refused` (the API's own ``{"error"}``, with its status).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx

from monitor.children import CONTROL_ENV


def control_headers(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``Authorization: Bearer $AIRISK_CONTROL_TOKEN`` when that is set, else nothing."""
    token = (os.environ if environ is None else environ).get(CONTROL_ENV[0], "")
    return {"Authorization": f"Bearer {token}"} if token else {}


class ControlError(RuntimeError):
    """A control request that did not succeed."""


class Unreachable(ControlError):
    """Nothing answered at the URL (refused, timed out, cut off)."""


class NotJSON(ControlError):
    """An answer that is not the control API's JSON (another server at that address)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"answered {status} without JSON")
        self.status = status


class Refused(ControlError):
    """The control API answered an error: ``message`` is its ``error`` field, ``body`` the whole
    answer (some errors say more, such as a lapsed fault's ``lapsed_at``)."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.body = status, message, body


class ControlClient:
    """The control API at ``url`` (the server's root: ``/_airisk/`` is added)."""

    def __init__(self, url: str, *, timeout: float = 5.0, environ: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url + "/_airisk", timeout=timeout, headers=control_headers(environ),
                                 transport=transport)

    def call(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """The JSON answer of ``method /_airisk/<path>``; a `ControlError` unless it is a success."""
        try:
            response = self.http.request(method, "/" + path.lstrip("/"), json=body, params=params)
        except httpx.HTTPError as exc:
            raise Unreachable(str(exc)) from exc
        try:
            data = response.json()
        except ValueError:
            raise NotJSON(response.status_code) from None
        if response.status_code >= 400:
            raise Refused(response.status_code, str(data.get("error", data)) if isinstance(data, dict) else str(data),
                          data)
        return data

    # -- the verbs both sides have --------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.call("GET", "health")

    def fault_types(self) -> list[dict[str, Any]]:
        return self.call("GET", "fault-types")

    def faults(self) -> list[dict[str, Any]]:
        return self.call("GET", "faults")

    def add(self, fault: Mapping[str, Any]) -> dict[str, Any]:
        return self.call("POST", "faults", dict(fault))

    def renew(self, fault_id: str, for_s: float) -> dict[str, Any]:
        return self.call("POST", f"faults/{fault_id}/renew", {"for_s": for_s})

    def remove(self, fault_id: str) -> dict[str, Any]:
        return self.call("DELETE", f"faults/{fault_id}")

    def clear(self) -> int:
        return self.call("DELETE", "faults")["removed"]

    def reset(self) -> dict[str, Any]:
        return self.call("POST", "reset")

    def log(self, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The request log, oldest first: entries newer than ``after``, the last ``limit`` of them."""
        params = {k: v for k, v in (("after", after), ("limit", limit)) if v}
        return self.call("GET", "log", params=params or None)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ControlClient", "ControlError", "NotJSON", "Refused", "Unreachable", "control_headers"]
