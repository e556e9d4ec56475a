"""``content_filtered``: the provider's safety filter stops the answer (no text, finish "filter",
which each speaker maps to its own reason; Ollama has no filter and lists it ``unsupported``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Synthesize
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker


@register
class ContentFiltered(FaultType):
    name = "content_filtered"
    category = "stream"
    doc = "the answer is stopped by the provider's safety filter"
    expect = ErrorKind.CONTENT_FILTERED

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Synthesize:
        return Synthesize([], "filter")
