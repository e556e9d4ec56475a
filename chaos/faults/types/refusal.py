"""``refusal``: the model declines to answer, as each provider's models phrase it, in the
provider's own refusal field where it has one.

- OpenAI (and Azure): the decline goes in ``message.refusal`` (streamed: ``delta.refusal``), with
  ``content`` null and finish "stop": the Chat Completions refusal field of Structured Outputs
  (platform.openai.com/docs/guides/structured-outputs/refusals; the API reference's
  ``choices[].message.refusal`` and ``choices[].delta.refusal``), rendered by the speaker's
  ``refusal_voice`` (`chaos.speakers.openai`). The legacy completions API has no such field:
  there the decline is the text.
- Anthropic: ``stop_reason: "refusal"`` (docs.anthropic.com, "Streaming refusals": returned when
  the model declines during generation; the text before it stays in ``content``). The speaker's
  "filter" finish is that stop reason.
- Gemini, Cohere, Ollama: no refusal field. A model that declines answers in plain text with an
  ordinary finish, so that is the nearest form and what is sent: Gemini ``finishReason: "STOP"``
  (its other reasons, SAFETY/RECITATION/BLOCKLIST, are the safety system's, not the model's:
  ai.google.dev, ``Candidate.FinishReason``; that is ``content_filtered``), Cohere
  ``finish_reason: "COMPLETE"`` (its v2 reasons are COMPLETE, STOP_SEQUENCE, MAX_TOKENS,
  TOOL_CALL, ERROR), Ollama ``done_reason: "stop"`` (stop, length, load).

The probe reads a refusal field as CONTENT_FILTERED (OpenAI, Anthropic) and a declining text as
a failed canary (WRONG_ANSWER): one fault, two kinds, so `expect` is None and
tests/chaos/test_semantic_faults.py pins each protocol's. The wording is each vendor's models'
usual phrasing, not a quotation of any one answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Synthesize, words_of

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker

PHRASES = {
    "openai": "I'm sorry, but I can't assist with that request.",
    "anthropic": "I can't help with this request. Is there something else I can help you with?",
    "gemini": "I can't help with that, as I'm only a language model and don't have the ability to "
              "process and understand that.",
    "cohere": "I'm sorry, but I cannot provide a response to that request.",
    "ollama": "I can't help with that. Is there anything else I can help you with?",
}
_FINISH = {"anthropic": "filter"}  # the speaker's "filter" is Anthropic's stop_reason "refusal"


@register
class Refusal(FaultType):
    name = "refusal"
    category = "stream"
    doc = "the model declines, in the provider's refusal field where it has one (OpenAI message.refusal, " \
          "Anthropic stop_reason 'refusal'), elsewhere as its plain text"

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Synthesize:
        words = words_of(PHRASES.get(speaker.name, PHRASES["openai"]), ask.max_tokens)
        return Synthesize(words, _FINISH.get(speaker.name, "stop"), voice=speaker.refusal_voice(ask))

