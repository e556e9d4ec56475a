"""``hang``: the request is accepted, then nothing is sent until the client gives up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Hold
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker


@register
class Hang(FaultType):
    name = "hang"
    category = "connection"
    doc = "accept the request, then send nothing until the client gives up"
    params: ClassVar[dict[str, Any]] = {"seconds": 300}
    expect = ErrorKind.FIRST_TOKEN_TIMEOUT

    def respond(self, fault: FaultLike, speaker: Speaker, ask: Ask | None) -> Hold:
        return Hold(fault.params["seconds"])
