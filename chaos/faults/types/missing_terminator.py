"""``missing_terminator``: the whole answer, but no end-of-stream marker.

A cut only where the marker carries the finish reason (Gemini, Cohere, Ollama); after a finish
reason (OpenAI's [DONE], Anthropic's message_stop) the answer is complete without it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Unterminated
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker


@register
class MissingTerminator(FaultType):
    name = "missing_terminator"
    category = "stream"
    doc = "the whole answer, but no end-of-stream marker"
    expect = ErrorKind.STREAM_CUT
    edits = True

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Unterminated:
        return Unterminated()
