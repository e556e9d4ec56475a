"""Cohere Chat v2, server side.

Formats as in `probes.dialects.cohere` (whose docstring cites the sources):
``event:``/``data:`` pairs with kebab-case ``type`` (message-start, content-start,
content-delta, content-end, message-end with finish_reason and usage); error bodies
``{"id", "message"}`` with 400/401/402/404/429/500/503.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos.speakers.base import Ask, Speaking, Stated, dumps, retiring, sse
from chaos.speakers.reading import last_user
from chaos.speakers.serving import EmulatorRoute, Listed, Paging

ERRORS: dict[str, Stated] = {
    "overloaded": Stated(503, "The model is overloaded with requests (high demand), please try again later."),
    "rate_limited": Stated(429, "You are using a Trial key, which is limited to 20 API calls / minute."),
    "quota_exhausted": Stated(402, "Please add or update your payment method to continue: usage limit reached."),
    "auth": Stated(401, "invalid api token"),
    "model_not_found": Stated(404, "model '{model}' not found, make sure the correct model ID was used"),
    "bad_request": Stated(400, "{message}"),
    "context_too_long": Stated(400, "too many tokens: the prompt is too long for the model's context length"),
}
# One spent-money form (402): no credit- or day-specific one is documented.
ERRORS["credit_exhausted"] = ERRORS["daily_quota"] = ERRORS["quota_exhausted"]
_FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS", "filter": "ERROR_TOXIC"}


class CohereSpeaker(Speaking):
    name = "cohere"
    content_type = "text/event-stream"
    errors = ERRORS
    # Chat under v2; "List Models" only under v1.
    routes = (EmulatorRoute("POST", "/chat", "generate"),
              EmulatorRoute("GET", "/models", "listing", swap=("/v2", "/v1")))
    paging = Paging("page_size", "page_token", 20)
    sdk_suffix = "/v2"  # cohere-python appends /v2/chat to https://api.cohere.com

    def error_body(self, kind: str, stated: Stated, ask: Ask | None, wait: float) -> bytes:
        return dumps({"id": ask.id if ask else "emulator", "message": stated.message})

    def ask_of(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> Ask:
        return Ask(model=body.get("model", ""), prompt=last_user(body.get("messages")),
                   max_tokens=body.get("max_tokens") or 64, stream=bool(body.get("stream")))

    def open(self, ask: Ask) -> bytes:
        return (sse({"type": "message-start", "id": ask.id, "delta": {"message": {"role": "assistant"}}},
                    "message-start")
                + sse({"type": "content-start", "index": 0,
                       "delta": {"message": {"content": {"type": "text", "text": ""}}}}, "content-start"))

    def token(self, ask: Ask, text: str, index: int) -> bytes:
        return sse({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": text}}}},
                   "content-delta")

    def close(self, ask: Ask, finish: str, output_tokens: int) -> bytes:
        return sse({"type": "content-end", "index": 0}, "content-end")

    def terminator(self, ask: Ask, finish: str, output_tokens: int) -> bytes:
        usage = {"billed_units": {"input_tokens": ask.input_tokens, "output_tokens": output_tokens},
                 "tokens": {"input_tokens": ask.input_tokens, "output_tokens": output_tokens}}
        return sse({"type": "message-end", "delta": {"finish_reason": _FINISH[finish], "usage": usage}},
                   "message-end")

    def malformed(self, ask: Ask) -> bytes:
        return b'event: content-delta\ndata: {"type":"content-delta","delta":{"mess\n\n'

    def complete(self, ask: Ask, text: str, finish: str, output_tokens: int) -> dict[str, Any]:
        return {"id": ask.id, "finish_reason": _FINISH[finish],
                "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
                "usage": {"billed_units": {"input_tokens": ask.input_tokens, "output_tokens": output_tokens},
                          "tokens": {"input_tokens": ask.input_tokens, "output_tokens": output_tokens}}}

    def models(self, entries: list[Listed], next_page: str | None = None, *,
               variant: str | None = None) -> dict[str, Any]:
        """A "List Models" page: ``models`` of ``{name, endpoints, finetuned, context_length, is_deprecated}`` and
        ``next_page_token``. A model with a retirement date is ``is_deprecated`` (Cohere's own flag), the date
        in `RETIRES_FIELD` (Cohere's listing has none)."""
        models = [{"name": e.name, "endpoints": ["chat"], "finetuned": False, "context_length": 128000,
                   "is_deprecated": e.retires is not None, **retiring(e)} for e in entries]
        return {"models": models, **({"next_page_token": next_page} if next_page else {})}


SPEAKER = CohereSpeaker()
