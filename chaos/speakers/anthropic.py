"""Anthropic Messages, server side.

Formats as in `probes.dialects.anthropic` (whose docstring cites the sources): named
SSE events, ``ping``, ``event: error`` inside a 200 stream, and error bodies
``{"type": "error", "error": {"type", "message"}, "request_id"}``; 529 overloaded_error;
429 rate_limit_error with ``retry-after`` and ``anthropic-ratelimit-*`` headers; the
spend-cap 429 with ``details.error_code: enforced_spend_limit_reached``.
"""

from __future__ import annotations

from typing import Any

from chaos.speakers.base import JSON, SERVER_ERROR_TEXT, Ask, Listed, Rendered, dumps, fill, retiring, sse

_ERRORS: dict[str, tuple[int, str, str]] = {
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "rate_limited": (429, "rate_limit_error",
                     "This request would exceed the rate limit for your organization of 50 requests per minute."),
    "quota_exhausted": (429, "rate_limit_error",
                        "You have reached your API usage limits for this month."),
    # A spent prepaid balance is a 400, not a 429 (docs: Errors; the console's Plans & Billing).
    "credit_exhausted": (400, "invalid_request_error",
                         "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing "
                         "to upgrade or purchase credits."),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "model_not_found": (404, "not_found_error", "model: {model}"),
    "bad_request": (400, "invalid_request_error", "{message}"),
    "context_too_long": (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
}
_ERRORS["daily_quota"] = _ERRORS["quota_exhausted"]  # no per-day quota: the spend cap is the nearest
_FINISH = {"stop": "end_turn", "length": "max_tokens", "filter": "refusal"}


class AnthropicSpeaker:
    name = "anthropic"
    content_type = "text/event-stream; charset=utf-8"

    def error(
        self, kind: str, *, status: int | None, retry_after: float | None, ask: Ask | None, detail: str = ""
    ) -> Rendered:
        if kind in _ERRORS:
            code_status, etype, message = _ERRORS[kind]
        else:
            code_status = status or 500
            etype, message = "api_error", SERVER_ERROR_TEXT.format(status=code_status)
        error: dict[str, Any] = {"type": etype, "message": fill(message, ask, detail)}
        request_id = f"req_{(ask.id if ask else 'emulator')}"
        # request-id as the real API sends it (the SDK reads it into APIStatusError.request_id);
        # x-should-retry false on every 4xx but 429, as on the wire (a live 400 says false). The
        # spend-cap 429 is retried too: "Retries, including the SDK's automatic retries, fail until
        # access resumes" (docs, Rate limits > Hitting your spend limit).
        headers = {**JSON, "request-id": request_id}
        headers["x-should-retry"] = "true" if code_status == 429 or code_status >= 500 else "false"
        if kind in ("quota_exhausted", "daily_quota"):
            error["details"] = {"error_code": "enforced_spend_limit_reached"}
        if kind == "rate_limited":
            wait = retry_after if retry_after is not None else 5
            headers.update({"retry-after": f"{wait:g}", "anthropic-ratelimit-requests-limit": "50",
                            "anthropic-ratelimit-requests-remaining": "0"})
        body = {"type": "error", "error": error, "request_id": request_id}
        return code_status, headers, dumps(body)

    def open(self, ask: Ask) -> bytes:
        message = {"id": f"msg_{ask.id}", "type": "message", "role": "assistant", "model": ask.model,
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": ask.input_tokens, "output_tokens": 1}}
        return (sse({"type": "message_start", "message": message}, "message_start")
                + sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                      "content_block_start")
                + sse({"type": "ping"}, "ping"))

    def token(self, ask: Ask, text: str, index: int) -> bytes:
        return sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
                   "content_block_delta")

    def close(self, ask: Ask, finish: str, output_tokens: int) -> bytes:
        return (sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
                + sse({"type": "message_delta", "delta": {"stop_reason": _FINISH[finish], "stop_sequence": None},
                       "usage": {"output_tokens": output_tokens}}, "message_delta"))

    def terminator(self, ask: Ask, finish: str, output_tokens: int) -> bytes:
        return sse({"type": "message_stop"}, "message_stop")

    def stream_error(self, ask: Ask, kind: str) -> bytes:
        _, _, body = self.error(kind, status=None, retry_after=None, ask=ask)
        return b"event: error\ndata: " + body + b"\n\n"

    def malformed(self, ask: Ask) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"te\n\n'

    def complete(self, ask: Ask, text: str, finish: str, output_tokens: int) -> dict[str, Any]:
        return {"id": f"msg_{ask.id}", "type": "message", "role": "assistant", "model": ask.model,
                "content": [{"type": "text", "text": text}] if text else [],
                "stop_reason": _FINISH[finish], "stop_sequence": None,
                "usage": {"input_tokens": ask.input_tokens, "output_tokens": output_tokens}}

    def models(self, entries: list[Listed], next_page: str | None = None) -> dict[str, Any]:
        """A "List Models" page: ``data`` of ``{type, id, display_name, created_at}``, ``has_more``, ``first_id``,
        ``last_id`` (the client's next ``after_id``). Anthropic lists no retirement date: `RETIRES_FIELD`."""
        data = [{"type": "model", "id": e.name, "display_name": e.name, "created_at": "2025-01-01T00:00:00Z",
                 **retiring(e)} for e in entries]
        return {"data": data, "has_more": next_page is not None, "first_id": entries[0].name if entries else None,
                "last_id": entries[-1].name if entries else None}


SPEAKER = AnthropicSpeaker()
