"""``truncated_answer``: the answer stops mid-sentence with the provider's "ran out of tokens" finish.

A 200 with a well-formed body, so no status code shows it; the finish reason does, in each
provider's own word: OpenAI ``finish_reason: "length"``, Anthropic ``stop_reason: "max_tokens"``,
Gemini ``finishReason: "MAX_TOKENS"``, Cohere ``finish_reason: "MAX_TOKENS"``, Ollama
``done_reason: "length"`` (each speaker maps the common "length"). A product that shows the
text without reading the finish reason shows half a sentence. The probe's canary finds no
answer in it: `expect` is WRONG_ANSWER on every protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Synthesize, words_of
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker

CUT = "Sure. To answer that properly we first need to look at how the question is framed, and the"


@register
class TruncatedAnswer(FaultType):
    name = "truncated_answer"
    category = "stream"
    doc = "the answer stops mid-sentence with the provider's max-tokens finish reason (OpenAI 'length')"
    expect = ErrorKind.WRONG_ANSWER

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Synthesize:
        return Synthesize(words_of(CUT, ask.max_tokens), "length")
