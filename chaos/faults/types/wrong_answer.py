"""``wrong_answer``: a well-formed answer that is wrong: a canary's number plus 7, else an answer
off the job. The emulator composes its own wrong answers (`Synthesize.wrong`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Synthesize, words_of
from probes.canary import solve
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker

WRONG = "Atlantis is the answer, as far as this model can tell"


@register
class WrongAnswer(FaultType):
    name = "wrong_answer"
    category = "stream"
    doc = "a well-formed stream with a wrong answer"
    expect = ErrorKind.WRONG_ANSWER

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Synthesize:
        right = solve(ask.prompt)
        text = str(int(right) + 7) if right is not None and right.strip().isdigit() else WRONG
        return Synthesize(words_of(text, ask.max_tokens), "stop", wrong=True)
