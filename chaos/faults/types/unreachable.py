"""``unreachable``: the provider cannot be reached.

Behind a proxy the product is already connected, so "cannot reach the provider" is a connection
closed with no response (FIN): the SDKs raise the same APIConnectionError as for a refused
connect. The in-process transport raises a real httpx.ConnectError (`Drop.connect`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Drop
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker


@register
class Unreachable(FaultType):
    name = "unreachable"
    category = "connection"
    doc = "the provider cannot be reached: the connection ends with no response"
    expect = ErrorKind.CONNECTION_RESET

    def respond(self, fault: FaultLike, speaker: Speaker, ask: Ask | None) -> Drop:
        return Drop(connect=True)
