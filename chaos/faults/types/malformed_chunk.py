"""``malformed_chunk``: after N chunks, one that is not valid JSON (each speaker's own broken event)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Break
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker


@register
class MalformedChunk(FaultType):
    name = "malformed_chunk"
    category = "stream"
    doc = "a chunk that is not valid JSON after N chunks"
    params: ClassVar[dict[str, Any]] = {"after_chunks": 1}
    expect = ErrorKind.MALFORMED
    edits = True

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Break:
        return Break(fault.params["after_chunks"], speaker.malformed(ask))
