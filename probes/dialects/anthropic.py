"""Anthropic Messages API, streaming.

Wire format, from:
- Anthropic docs "Streaming Messages" (docs.claude.com/en/docs/build-with-claude/streaming):
  named events ``message_start``, ``content_block_start``, ``content_block_delta``
  (``delta.type == "text_delta"``), ``content_block_stop``, ``message_delta`` (stop_reason
  and *cumulative* ``usage``), ``message_stop``; ``ping`` events anywhere; and
  ``event: error`` inside a 200 stream, e.g. ``overloaded_error``. No ``[DONE]``.
- Anthropic docs "Errors" (docs.claude.com/en/api/errors): body
  ``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``;
  types invalid_request_error 400, authentication_error 401, permission_error 403,
  not_found_error 404, request_too_large 413, rate_limit_error 429, api_error 500,
  overloaded_error 529.
- Anthropic docs "Rate limits": ``retry-after`` on 429, ``anthropic-ratelimit-*`` headers;
  the spend-limit 429 carries ``details.error_code: enforced_spend_limit_reached``.
- anthropic-sdk-python ``src/anthropic/_streaming.py``: dispatch on the SSE event name,
  ``error`` events raise; ``src/anthropic/_client.py``: ``x-api-key`` and
  ``anthropic-version: 2023-06-01`` headers.
- The stream is complete once ``message_delta`` has brought a ``stop_reason`` and the body
  ends cleanly, ``message_stop`` or not: anthropic-sdk-python's ``MessageStream`` builds its
  final message from the events it got and never asks for ``message_stop``
  (``src/anthropic/lib/streaming/_messages.py``, ``accumulate_event``).

Model listings: "List Models" (docs.claude.com/en/api/models-list): ``GET /v1/models`` with
``limit`` (1 to 1000) and ``after_id``; ``{"data": [{"type": "model", "id", "display_name",
"created_at"}], "has_more", "first_id", "last_id"}``, newest first. No retirement field.

Non-streaming answers (`parse_body`, for gateways that ignore ``stream``), from the
Messages API reference ("Create a Message", docs.claude.com/en/api/messages): a Message
object ``{"type": "message", "role": "assistant", "content": [{"type": "text", "text"}],
"stop_reason", "usage": {"input_tokens", "output_tokens"}}``; anthropic-sdk-python
``src/anthropic/types/message.py`` and ``text_block.py``.

A conversation (`probes.conversation.Conversation`), from the same "Create a Message" reference
and anthropic-sdk-python ``src/anthropic/types/message_create_params.py``: the system prompt is
the top-level ``system`` (there is no "system" role among ``messages``); ``messages`` are
``user``/``assistant`` turns (consecutive turns of one role are combined by the API, and a last
``assistant`` turn is a prefill the answer continues); ``max_tokens`` is required;
``temperature`` (0 to 1), ``top_p``, ``stop_sequences``. A temperature above 1 (allowed by the
conversation, up to 2 as OpenAI's) is sent as 1, the highest this API takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import httpx

from probes.dialects import base
from probes.dialects.base import Chunk, Finish, ProviderError, RequestSpec, body_json, checked, loads, present
from probes.framing import Event
from probes.result import ErrorKind
from probes.target import Target

if TYPE_CHECKING:
    from probes.conversation import Conversation

API_VERSION = "2023-06-01"
# The error types of the "Errors" page (and the billing type the API also sends), as kinds.
ERRORS: base.ErrorTable = {
    "overloaded_error": ErrorKind.OVERLOADED,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "billing_error": ErrorKind.QUOTA_EXHAUSTED,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "not_found_error": ErrorKind.MODEL_NOT_FOUND,
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "request_too_large": ErrorKind.BAD_REQUEST,
    "api_error": ErrorKind.SERVER_ERROR,
    "timeout_error": ErrorKind.SERVER_ERROR,
}
_FINISH: dict[str, Finish] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "refusal": "filter",
}


class AnthropicDialect:
    name = "anthropic"
    framing: Literal["sse"] = "sse"
    errors = ERRORS

    def build_request(self, target: Target, prompt: str, *, api_key: str | None,
                      conversation: Conversation | None = None) -> RequestSpec:
        version = str(target.options.get("anthropic_version", API_VERSION))
        headers = base.request_headers(target, api_key, "x-api-key", own={"anthropic-version": version})
        if conversation is None:
            body: dict[str, Any] = {
                "model": target.model,
                "max_tokens": target.max_tokens,
                "stream": True,
                "temperature": 0,
                "messages": [{"role": "user", "content": prompt}],
            }
        else:
            c = conversation
            body = {"model": target.model, "max_tokens": c.max_tokens_for(target), "stream": True,
                    **present(system=c.system),
                    "messages": [{"role": role, "content": text} for role, text in c.messages],
                    **present(temperature=None if c.temperature is None else min(c.temperature, 1.0), top_p=c.top_p,
                              stop_sequences=list(c.stop) or None)}
        return RequestSpec("POST", f"{target.base_url.rstrip('/')}/messages", headers, body)

    @checked
    def parse_event(self, event: Event) -> Chunk:
        if event.stray:
            return Chunk(error=_error_from(body_json(event.data.encode()), None, event.data))
        data = loads(event.data)
        if not isinstance(data, dict):
            raise ValueError(f"event is not a JSON object: {event.data[:80]!r}")
        kind = event.event or data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            return Chunk(text=delta.get("text") or "")
        if kind == "message_delta":
            delta = data.get("delta") or {}
            usage = data.get("usage") or {}
            raw = delta.get("stop_reason")
            return Chunk(
                finish=_FINISH.get(raw, "other") if raw else None,
                finish_raw=raw,
                output_tokens=usage.get("output_tokens"),
                input_tokens=usage.get("input_tokens"),
            )
        if kind == "message_start":
            usage = (data.get("message") or {}).get("usage") or {}
            return Chunk(input_tokens=usage.get("input_tokens"))
        if kind == "message_stop":
            return Chunk(done=True)
        if kind == "error":
            return Chunk(error=_error_from(data, None, event.data))
        return Chunk()  # ping, content_block_start/stop, and event types added later

    @checked
    def parse_body(self, body: bytes) -> Chunk:
        data = loads(body)
        if not isinstance(data, dict):
            raise ValueError(f"answer is not a JSON object: {body[:80]!r}")
        if data.get("type") == "error" or "error" in data:
            return Chunk(error=_error_from(data, None, base.error_text(body)), done=True)
        content = data.get("content")
        if not isinstance(content, list):
            raise ValueError(f"answer has no content: {body[:80]!r}")
        usage = data.get("usage") or {}
        raw = data.get("stop_reason")
        chunk = Chunk(
            finish=_FINISH.get(raw, "other") if raw else None,
            finish_raw=raw,
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            done=True,
        )
        for block in content:
            if block.get("type") == "text":
                chunk.text += block.get("text") or ""
        return chunk

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        return base.parse_error(_error_from, status, headers, body)

    def models_request(self, target: Target, *, api_key: str | None, page: str | None = None) -> RequestSpec:
        params = {"limit": "1000", **({"after_id": page} if page else {})}
        return base.listing_request(self, target, api_key, "/models", params)

    def parse_models(self, body: bytes) -> base.ModelPage:
        data, items = base.listing_object(body, "data")
        page = base.listing(items, _listed)
        more = data.get("has_more") is True
        return base.ModelPage(page.models, base.page_token(data.get("last_id")) if more else None)


def _error_from(data: Any, status: int | None, fallback: str) -> ProviderError:
    inner = data.get("error") if isinstance(data, dict) else None
    if not isinstance(inner, dict):
        return ProviderError(http_status=status, message=fallback)
    details = inner.get("details") if isinstance(inner.get("details"), dict) else {}
    return ProviderError(
        http_status=status,
        type=inner.get("type"),
        code=details.get("error_code"),
        message=inner.get("message") or fallback,
    )


def _listed(item: dict[str, Any]) -> base.ListedModel | None:
    """One ``data`` entry ``{type: "model", id, display_name, created_at}``: no end-of-life field (Anthropic
    publishes retirement dates on its "Model deprecations" page only); the emulator's `RETIRES_FIELD`."""
    name = base.listed_name(item.get("id"))
    return None if name is None else base.ListedModel(name, base.iso_day(item.get(base.RETIRES_FIELD)))


DIALECT = AnthropicDialect()
