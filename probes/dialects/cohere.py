"""Cohere Chat API v2, streaming.

Wire format, from:
- Cohere API reference "Chat" v2 (docs.cohere.com/reference/chat-stream):
  ``POST /v2/chat`` with ``stream: true``, ``Authorization: Bearer``; SSE events whose
  ``data`` carries a kebab-case ``type``: ``message-start``, ``content-start``,
  ``content-delta`` (text at ``delta.message.content.text``), ``content-end``,
  ``message-end`` (``delta.finish_reason`` COMPLETE | MAX_TOKENS | STOP_SEQUENCE |
  TOOL_CALL | ERROR, and ``delta.usage.tokens``/``billed_units``).
- cohere-python ``src/cohere/v2/raw_client.py``: dispatches on ``data.type`` (the SSE event
  name is ignored), skips empty data, stops on a ``[DONE]`` line if one arrives.
- Cohere "Errors" page: ``{"message": ...}`` bodies with 400, 401, 402 (payment/quota),
  404, 429 (rate limited), 498 (invalid token), 499, 500, 503.

Non-streaming answers (`parse_body`, for gateways that ignore ``stream``), from the Chat v2
reference (docs.cohere.com/reference/chat, "Response"): ``{"id", "finish_reason",
"message": {"role": "assistant", "content": [{"type": "text", "text"}]}, "usage":
{"billed_units", "tokens": {"input_tokens", "output_tokens"}}}``; cohere-python
``src/cohere/v2/types/v2chat_response.py`` (``V2ChatResponse``) and
``src/cohere/types/assistant_message_response.py``.

Model listings: "List Models" (docs.cohere.com/reference/list-models): ``GET /v1/models`` with
``page_size``, ``page_token``, ``endpoint``; ``{"models": [{"name", "is_deprecated", ...}],
"next_page_token"}``.

A conversation (`probes.conversation.Conversation`), from the same Chat v2 reference
(docs.cohere.com/reference/chat, "Request") and cohere-python ``src/cohere/v2/client.py``
(``chat_stream`` parameters): ``messages`` with the system prompt first as
``{"role": "system"}``, then ``user``/``assistant`` turns; ``max_tokens``, ``temperature``,
``p`` (Cohere's name for top-p: "min value of 0.01, max value of 0.99", so a top_p of 1, no
cut, is sent as 0.99, the widest it takes) and ``stop_sequences`` (up to 5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import httpx

from probes.dialects import base
from probes.dialects.base import Chunk, Finish, ProviderError, RequestSpec, body_json, checked, loads, present
from probes.framing import Event
from probes.target import Target

if TYPE_CHECKING:
    from probes.conversation import Conversation

# Cohere's error bodies carry a message and no type or code ("Errors" page): the status decides.
ERRORS: base.ErrorTable = {}
_P_RANGE = (0.01, 0.99)  # what the API accepts for "p"
_FINISH: dict[str, Finish] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "ERROR": "error",
    "ERROR_TOXIC": "filter",
}


class CohereDialect:
    name = "cohere"
    framing: Literal["sse"] = "sse"
    errors = ERRORS

    def build_request(self, target: Target, prompt: str, *, api_key: str | None,
                      conversation: Conversation | None = None) -> RequestSpec:
        headers = base.request_headers(target, api_key, "authorization", scheme="Bearer ")
        if conversation is None:
            body: dict[str, Any] = {
                "model": target.model,
                "stream": True,
                "max_tokens": target.max_tokens,
                "temperature": 0,
                "messages": [{"role": "user", "content": prompt}],
            }
        else:
            c = conversation
            system = [{"role": "system", "content": c.system}] if c.system else []
            p = None if c.top_p is None else min(max(c.top_p, _P_RANGE[0]), _P_RANGE[1])
            body = {"model": target.model, "stream": True, "max_tokens": c.max_tokens_for(target),
                    **present(temperature=c.temperature, p=p, stop_sequences=list(c.stop) or None),
                    "messages": [*system, *({"role": role, "content": text} for role, text in c.messages)]}
        return RequestSpec("POST", f"{target.base_url.rstrip('/')}/chat", headers, body)

    @checked
    def parse_event(self, event: Event) -> Chunk:
        if event.stray:
            return Chunk(error=_error_from(body_json(event.data.encode()), None, event.data))
        if not event.data.strip():
            return Chunk()
        if event.data.startswith("[DONE]"):
            return Chunk(done=True)
        data = loads(event.data)
        if not isinstance(data, dict):
            raise ValueError(f"event is not a JSON object: {event.data[:80]!r}")
        kind = data.get("type")
        delta = data.get("delta") or {}
        if kind == "content-delta":
            content = (delta.get("message") or {}).get("content") or {}
            return Chunk(text=content.get("text") or "")
        if kind == "message-end":
            return _end(delta)
        if "message" in data and kind is None:  # an error object sent as an event
            return Chunk(error=_error_from(data, None, event.data))
        return Chunk()

    @checked
    def parse_body(self, body: bytes) -> Chunk:
        data = loads(body)
        if not isinstance(data, dict):
            raise ValueError(f"answer is not a JSON object: {body[:80]!r}")
        message = data.get("message")
        if not isinstance(message, dict):
            if message is not None:  # Cohere's error shape: {"message": "<text>"}
                return Chunk(error=_error_from(data, None, base.error_text(body)), done=True)
            raise ValueError(f"answer has no message: {body[:80]!r}")
        chunk = _end(data)  # a whole answer carries what the stream's message-end delta does
        for part in message.get("content") or ():
            if part.get("type") == "text":
                chunk.text += part.get("text") or ""
        return chunk

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        return base.parse_error(_error_from, status, headers, body)

    def models_request(self, target: Target, *, api_key: str | None, page: str | None = None) -> RequestSpec:
        # The listing is served under v1 only, whichever version the chat uses.
        root = target.base_url.rstrip("/")
        root = root[:-3] + "/v1" if root.endswith("/v2") else root
        params = {"page_size": "1000", "endpoint": "chat", **({"page_token": page} if page else {})}
        return RequestSpec("GET", f"{root}/models", base.listing_headers(self, target, api_key), None, params)

    def parse_models(self, body: bytes) -> base.ModelPage:
        data, items = base.listing_object(body, "models")
        page = base.listing(items, _listed)
        return base.ModelPage(page.models, base.page_token(data.get("next_page_token")))


def _end(data: dict) -> Chunk:
    """The end of an answer: a stream's ``message-end`` delta, or a whole non-streamed answer."""
    raw = data.get("finish_reason")
    tokens = (data.get("usage") or {}).get("tokens") or {}
    chunk = Chunk(finish=_FINISH.get(raw, "other") if raw else None, finish_raw=raw,
                  input_tokens=tokens.get("input_tokens"), output_tokens=tokens.get("output_tokens"), done=True)
    if raw == "ERROR":
        chunk.error = ProviderError(http_status=None, type="ERROR", message=data.get("error") or "")
    return chunk


def _error_from(data: Any, status: int | None, fallback: str) -> ProviderError:
    if isinstance(data, dict) and data.get("message"):
        return ProviderError(http_status=status, message=data["message"])
    return ProviderError(http_status=status, message=fallback)


def _listed(item: dict[str, Any]) -> base.ListedModel | None:
    """One ``models`` entry ``{name, is_deprecated, endpoints, finetuned, context_length, ...}``: a
    deprecated flag but no shutdown date (Cohere's "Deprecations" page has those); `RETIRES_FIELD`."""
    name = base.listed_name(item.get("name"))
    if name is None:
        return None
    retires = base.iso_day(item.get(base.RETIRES_FIELD))
    return base.ListedModel(name, retires, deprecated=item.get("is_deprecated") is True)


DIALECT = CohereDialect()
