"""Plausible answers to the storefront's four prompts, so an emulated provider does the example's jobs well.

The emulator answers canary questions correctly (`probes.canary.solve`); this module does the same for
the example product's features (``examples/storefront/app.py``), so an eval run against the emulated
hosted providers measures a model that does the job, and the bundled local model is compared with
something better than filler. `respond` recognises a request by the storefront's wording and composes
the answer from the request alone (it never reads an eval set's references):

- description ("Write a two-sentence description for this product: ..."): two sentences that name the
  product, with a benefit picked by the kind of product it is;
- support chat (the system prompt "... support assistant ..."): the shop's policy on the question's
  topic (shipping, returns, order status, sizing, payment, ...), in at most three sentences, never
  promising a refund;
- tags ("Give up to five short lowercase tags for this review ..."): labels from `TAG_LABELS`, picked
  by the review's words ("not great" counts as negative);
- search ("Search query: ...  Items: 1. ... Reply with the number ..."): the numbers of the three best
  items, by word overlap with the query (stems and a small thesaurus).

One module a feature (``description``, ``support``, ``tags``, ``search``); this one recognises the
request and reads its system prompt. Deterministic: the same request gets the same answer. Anything
it does not recognise is None, and the emulator answers as before. ``wrong=True`` is the
``wrong_answer`` fault: an answer that looks fine and does not do the job (an off-topic description,
a support answer that promises a refund, the tags the review does not earn, the least relevant items
first).
"""

from __future__ import annotations

import json

from chaos.answers.description import describe
from chaos.answers.search import numbered_items, rank, relevance
from chaos.answers.support import PROMISE, support, topic
from chaos.answers.tags import TAG_LABELS, tag

__all__ = [
    "DESCRIPTION",
    "PROMISE",
    "SEARCH",
    "SEARCH_END",
    "SEARCH_ITEMS",
    "SUPPORT_SYSTEM",
    "TAGS",
    "TAG_LABELS",
    "describe",
    "numbered_items",
    "rank",
    "relevance",
    "respond",
    "support",
    "system_prompt",
    "tag",
    "topic",
]

DESCRIPTION = "Write a two-sentence description for this product: "
TAGS = "Give up to five short lowercase tags for this review, comma-separated, nothing else.\n\nReview: "
SEARCH = "Search query: "
SEARCH_ITEMS = "\n\nItems:\n"
SEARCH_END = "\n\nReply with the number of the item that best matches the query."
SUPPORT_SYSTEM = "support assistant"


def respond(prompt: str, system: str | None = None, *, wrong: bool = False) -> str | None:
    """The answer to a storefront request (its last user message and system prompt), or None if it is not one.

    A completions endpoint gets one text, the system prompt first (`probes.Conversation.as_text`): when
    the whole prompt is not a storefront one, its part after the first blank line is tried with the
    part before as the system prompt."""
    if not isinstance(prompt, str):
        return None
    answer = _respond(prompt, system, wrong)
    if answer is None and "\n\n" in prompt:
        head, _, rest = prompt.partition("\n\n")
        answer = _respond(rest, head, wrong)
    return answer


def _respond(prompt: str, system: str | None, wrong: bool) -> str | None:
    if prompt.startswith(DESCRIPTION) and (product := prompt[len(DESCRIPTION):].strip()):
        return describe(product, wrong=wrong)
    if prompt.startswith(TAGS) and (review := prompt[len(TAGS):].strip()):
        return tag(review, wrong=wrong)
    if prompt.startswith(SEARCH) and prompt.endswith(SEARCH_END) and SEARCH_ITEMS in prompt:
        query, _, listing = prompt[len(SEARCH):-len(SEARCH_END)].partition(SEARCH_ITEMS)
        if (items := numbered_items(listing)) and query.strip():
            return rank(query, items, wrong=wrong)
    if isinstance(system, str) and SUPPORT_SYSTEM in system.lower() and prompt.strip():
        return support(prompt, wrong=wrong)
    return None


def system_prompt(body: bytes | str | dict) -> str | None:
    """The system prompt of a generation request in any emulated protocol, or None. Total: any body.

    OpenAI, Cohere and Ollama chat carry it as a message (role ``system``, or OpenAI's ``developer``);
    Anthropic and Ollama's ``/api/generate`` as ``system`` (a string, or Anthropic's text blocks);
    Gemini as ``systemInstruction`` (``system_instruction``) parts."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
    if not isinstance(body, dict):
        return None
    parts = [_text(body.get(key)) for key in ("system", "systemInstruction", "system_instruction")]
    messages = body.get("messages")
    if isinstance(messages, list):
        parts += [_text(m.get("content")) for m in messages
                  if isinstance(m, dict) and m.get("role") in ("system", "developer")]
    return "\n".join(p for p in parts if p) or None


def _text(value: object) -> str:
    """A string, text blocks (``[{"text": ...}]``) or Gemini's ``{"parts": [...]}``, as text."""
    if isinstance(value, dict):
        value = value.get("parts")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(b["text"] for b in value if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""
