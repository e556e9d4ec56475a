"""``invalid_json``: a structured-output answer that does not parse, or parses but breaks its schema.

``form``: "unparseable" (default), a JSON object cut off before it closes, as a model sends when
it stops early or forgets a brace; "schema", valid JSON whose fields are none of those asked for
(a required field missing, a value of the wrong type), which only a schema check catches. Sent
as the answer's text with an ordinary "stop" finish: every provider returns structured output
as text (OpenAI ``message.content``, Anthropic a ``text`` block, Gemini ``parts[].text``, Cohere
``message.content[].text``, Ollama ``message.content``), so the product's own parsing is what
meets it. The probe's canary finds no answer in it: `expect` is WRONG_ANSWER."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Synthesize, words_of
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker

FORMS = {
    "unparseable": '{"answer": "Here is what you asked for", "confidence": "high", "items": ["first", "sec',
    "schema": '{"note": "the fields you asked for are not here", "answer": null, "items": "none"}',
}


@register
class InvalidJson(FaultType):
    name = "invalid_json"
    category = "stream"
    doc = "a structured-output answer that does not parse (form=unparseable) or breaks its schema (form=schema)"
    params: ClassVar[dict[str, Any]] = {"form": "unparseable"}
    choices: ClassVar[dict[str, Any]] = {"form": FORMS}
    expect = ErrorKind.WRONG_ANSWER

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Synthesize:
        return Synthesize(words_of(FORMS[fault.params["form"]], ask.max_tokens), "stop")
