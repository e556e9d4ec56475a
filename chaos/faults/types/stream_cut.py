"""``stream_cut``: the body ends cleanly after N chunks, without the terminator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Break
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker


@register
class StreamCut(FaultType):
    name = "stream_cut"
    category = "stream"
    doc = "end the body cleanly after N chunks, without the terminator"
    params: ClassVar[dict[str, Any]] = {"after_chunks": 2}
    expect = ErrorKind.STREAM_CUT
    edits = True

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Break:
        return Break(fault.params["after_chunks"])
