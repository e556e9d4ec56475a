"""``connection_reset``: a TCP RST before any response."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Drop
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker


@register
class ConnectionReset(FaultType):
    name = "connection_reset"
    category = "connection"
    doc = "reset the TCP connection (RST) before any response"
    expect = ErrorKind.CONNECTION_RESET

    def respond(self, fault: FaultLike, speaker: Speaker, ask: Ask | None) -> Drop:
        return Drop(reset=True)
