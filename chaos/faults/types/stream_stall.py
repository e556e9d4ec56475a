"""``stream_stall``: after N chunks the stream falls silent, the connection left open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Break
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker


@register
class StreamStall(FaultType):
    name = "stream_stall"
    category = "stream"
    doc = "stop sending after N chunks but keep the connection open"
    params: ClassVar[dict[str, Any]] = {"after_chunks": 2, "seconds": 300}
    expect = ErrorKind.STREAM_STALLED
    edits = True

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Break:
        return Break(fault.params["after_chunks"], stall_s=fault.params["seconds"])
