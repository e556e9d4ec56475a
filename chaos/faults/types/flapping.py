"""``flapping``: down for ``down_s``, up for ``up_s``, repeating; while down, a 5xx."""

from __future__ import annotations

from typing import Any, ClassVar

from chaos.faults.catalogue import FaultLike, register
from chaos.faults.types._base import ErrorFault
from probes.result import ErrorKind


@register
class Flapping(ErrorFault):
    name = "flapping"
    doc = "down for down_s, then up for up_s, repeating (5xx while down)"
    params: ClassVar[dict[str, Any]] = {"down_s": 10, "up_s": 10, "status": 503}
    expect = ErrorKind.SERVER_ERROR
    kind = "server_error"

    def fires(self, fault: FaultLike, now: float) -> bool:
        """Down from the fault's creation for ``down_s``, then up for ``up_s``, and so on."""
        period = fault.params["down_s"] + fault.params["up_s"]
        return period > 0 and (now - fault.created_at) % period < fault.params["down_s"]
