"""``empty_answer``: a well-formed answer with no text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Synthesize
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker


@register
class EmptyAnswer(FaultType):
    name = "empty_answer"
    category = "stream"
    doc = "a well-formed stream with no answer text"
    expect = ErrorKind.EMPTY_ANSWER

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Synthesize:
        return Synthesize([], "stop")
