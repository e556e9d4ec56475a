"""Anthropic Messages, server side.

Formats as in `probes.dialects.anthropic` (whose docstring cites the sources): named
SSE events, ``ping``, ``event: error`` inside a 200 stream, and error bodies
``{"type": "error", "error": {"type", "message"}, "request_id"}``; 529 overloaded_error;
429 rate_limit_error with ``retry-after`` and ``anthropic-ratelimit-*`` headers; the
spend-cap 429 with ``details.error_code: enforced_spend_limit_reached``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from chaos.speakers.base import Ask, Speaking, Stated, dumps, retiring, sse
from chaos.speakers.reading import BadRequest, last_user
from chaos.speakers.serving import EmulatorRoute, Listed, Paging

ERRORS: dict[str, Stated] = {
    "overloaded": Stated(529, "Overloaded", "overloaded_error"),
    "rate_limited": Stated(429, "This request would exceed the rate limit for your organization of 50 requests per "
                                "minute.", "rate_limit_error"),
    "quota_exhausted": Stated(429, "You have reached your API usage limits for this month.", "rate_limit_error"),
    # A spent prepaid balance is a 400, not a 429 (docs: Errors; the console's Plans & Billing).
    "credit_exhausted": Stated(400, "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
                                    "Billing to upgrade or purchase credits.", "invalid_request_error"),
    "auth": Stated(401, "invalid x-api-key", "authentication_error"),
    "model_not_found": Stated(404, "model: {model}", "not_found_error"),
    "bad_request": Stated(400, "{message}", "invalid_request_error"),
    "context_too_long": Stated(400, "prompt is too long: 210000 tokens > 200000 maximum", "invalid_request_error"),
}
ERRORS["daily_quota"] = ERRORS["quota_exhausted"]  # no per-day quota: the spend cap is the nearest
_FINISH = {"stop": "end_turn", "length": "max_tokens", "filter": "refusal"}


class AnthropicSpeaker(Speaking):
    name = "anthropic"
    content_type = "text/event-stream; charset=utf-8"
    errors = ERRORS
    stream_error_frame = (b"event: error\ndata: ", b"\n\n")
    routes = (EmulatorRoute("POST", "/messages", "generate"), EmulatorRoute("GET", "/models", "listing"))
    # "List Models": limit (default 20) and after_id, the last id of the previous page.
    paging = Paging("limit", "after_id", 20, after_id=True)
    sdk_suffix = "/v1"  # the SDK appends /v1/messages to https://api.anthropic.com

    def server_error(self, status: int) -> Stated:
        return replace(super().server_error(status), type="api_error")

    def error_headers(self, kind: str, stated: Stated, ask: Ask | None, wait: float) -> dict[str, str]:
        # request-id as the real API sends it (the SDK reads it into APIStatusError.request_id);
        # x-should-retry false on every 4xx but 429, as on the wire (a live 400 says false). The
        # spend-cap 429 is retried too: "Retries, including the SDK's automatic retries, fail until
        # access resumes" (docs, Rate limits > Hitting your spend limit).
        headers = {"request-id": _request_id(ask)}
        headers["x-should-retry"] = "true" if stated.status == 429 or stated.status >= 500 else "false"
        if kind == "rate_limited":
            headers.update({"retry-after": f"{wait:g}", "anthropic-ratelimit-requests-limit": "50",
                            "anthropic-ratelimit-requests-remaining": "0"})
        return headers

    def error_body(self, kind: str, stated: Stated, ask: Ask | None, wait: float) -> bytes:
        error: dict[str, Any] = {"type": stated.type, "message": stated.message}
        if kind in ("quota_exhausted", "daily_quota"):
            error["details"] = {"error_code": "enforced_spend_limit_reached"}
        return dumps({"type": "error", "error": error, "request_id": _request_id(ask)})

    def ask_of(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> Ask:
        """"Create a Message" requires model, max_tokens and messages, and says nothing about the turns'
        order or the last role (consecutive turns of one role are combined, a last assistant turn is a
        prefill; newer models also take a "system" turn mid-conversation): no role is refused."""
        for field in ("model", "max_tokens", "messages"):
            if field not in body:
                raise BadRequest(f"{field}: Field required")
        return Ask(model=body["model"], prompt=last_user(body["messages"]), max_tokens=body["max_tokens"],
                   stream=bool(body.get("stream")))

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

    def malformed(self, ask: Ask) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"te\n\n'

    def complete(self, ask: Ask, text: str, finish: str, output_tokens: int) -> dict[str, Any]:
        return {"id": f"msg_{ask.id}", "type": "message", "role": "assistant", "model": ask.model,
                "content": [{"type": "text", "text": text}] if text else [],
                "stop_reason": _FINISH[finish], "stop_sequence": None,
                "usage": {"input_tokens": ask.input_tokens, "output_tokens": output_tokens}}

    def models(self, entries: list[Listed], next_page: str | None = None, *,
               variant: str | None = None) -> dict[str, Any]:
        """A "List Models" page: ``data`` of ``{type, id, display_name, created_at}``, ``has_more``, ``first_id``,
        ``last_id`` (the client's next ``after_id``). Anthropic lists no retirement date: `RETIRES_FIELD`."""
        data = [{"type": "model", "id": e.name, "display_name": e.name, "created_at": "2025-01-01T00:00:00Z",
                 **retiring(e)} for e in entries]
        return {"data": data, "has_more": next_page is not None, "first_id": entries[0].name if entries else None,
                "last_id": entries[-1].name if entries else None}


def _request_id(ask: Ask | None) -> str:
    return f"req_{(ask.id if ask else 'emulator')}"


SPEAKER = AnthropicSpeaker()
