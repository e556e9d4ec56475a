"""OpenAI Chat Completions, server side (also Azure OpenAI and OpenAI-compatible servers).

Formats as in `probes.dialects.openai` (whose docstring cites the sources); error
bodies follow OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with the
types and codes OpenAI uses: server_error, tokens/rate_limit_exceeded,
insufficient_quota, invalid_api_key, model_not_found, context_length_exceeded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

from chaos.speakers.base import Ask, Speaking, Stated, dumps, retiring, sse
from chaos.speakers.reading import BadRequest, last_user
from chaos.speakers.serving import EmulatorRoute, Listed

ERRORS: dict[str, Stated] = {
    "overloaded": Stated(503, "That model is currently overloaded with other requests. You can retry your request.",
                         "server_error"),
    "rate_limited": Stated(429, "Rate limit reached for requests per min (RPM): Limit 500, Used 500, Requested 1.",
                           "requests", "rate_limit_exceeded"),
    "quota_exhausted": Stated(429, "You exceeded your current quota, please check your plan and billing details.",
                              "insufficient_quota", "insufficient_quota"),
    "auth": Stated(401, "Incorrect API key provided: sk-****.", "invalid_request_error", "invalid_api_key"),
    "model_not_found": Stated(404, "The model `{model}` does not exist or you do not have access to it.",
                              "invalid_request_error", "model_not_found"),
    "bad_request": Stated(400, "{message}", "invalid_request_error"),
    "context_too_long": Stated(400, "This model's maximum context length is 128000 tokens. Please reduce the length.",
                               "invalid_request_error", "context_length_exceeded"),
}
# OpenAI's spent credit and spent quota are one form, 429 insufficient_quota ("Error codes" guide).
ERRORS["credit_exhausted"] = ERRORS["daily_quota"] = ERRORS["quota_exhausted"]

_AZURE = re.compile(r"/openai/deployments/(?P<deployment>[^/]+)/(?:chat/)?completions$")
# "Create chat completion" refuses a message role outside these.
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class OpenAISpeaker(Speaking):
    name = "openai"
    content_type = "text/event-stream"
    errors = ERRORS
    sdk_suffix = ""  # the SDKs take a base URL ending in /v1 and append /chat/completions: nothing to strip
    routes = (
        EmulatorRoute("POST", "/chat/completions", "generate"),
        EmulatorRoute("POST", "/completions", "generate"),
        EmulatorRoute("GET", "/models", "listing"),
        # Azure OpenAI REST reference: deployments by name, and "Models - List" under /openai.
        EmulatorRoute("POST", "/openai/deployments/{deployment}/chat/completions", "generate", variant="azure"),
        EmulatorRoute("GET", "/openai/models", "listing", variant="azure"),
    )

    def server_error(self, status: int) -> Stated:
        return replace(super().server_error(status), type="server_error")

    def error_headers(self, kind: str, stated: Stated, ask: Ask | None, wait: float) -> dict[str, str]:
        if kind != "rate_limited":
            return {}
        return {"retry-after": f"{wait:g}", "retry-after-ms": str(int(wait * 1000)),
                "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{wait:g}s"}

    def error_body(self, kind: str, stated: Stated, ask: Ask | None, wait: float) -> bytes:
        return dumps({"error": {"message": stated.message, "type": stated.type, "param": None, "code": stated.code}})

    def ask_of(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> Ask:
        """A chat completion (the Azure deployment's name is its model, and ``api-version`` is required, as
        Azure's REST reference says), or a legacy completion (one ``prompt`` string)."""
        if (azure := _AZURE.search(path)) is not None:
            if "api-version" not in query:
                raise BadRequest("Missing required query parameter: api-version")
            body = {"model": azure["deployment"], **body}
        opts = body.get("stream_options") or {}
        if path.endswith("/completions") and not path.endswith("/chat/completions"):
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                raise BadRequest("prompt: must be a string")
            return Ask(model=body.get("model", ""), prompt=prompt, max_tokens=body.get("max_tokens") or 16,
                       stream=bool(body.get("stream")), include_usage=bool(opts.get("include_usage")),
                       completions=True)
        if "model" not in body:
            raise BadRequest("you must provide a model parameter")
        return Ask(model=body["model"], prompt=last_user(body.get("messages"), _ROLES),
                   max_tokens=body.get("max_tokens") or body.get("max_completion_tokens") or 64,
                   stream=bool(body.get("stream")), include_usage=bool(opts.get("include_usage")))

    def _chunk(self, ask: Ask, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        obj = "text_completion" if ask.completions else "chat.completion.chunk"
        return sse({"id": f"chatcmpl-{ask.id}", "object": obj, "created": ask.created, "model": ask.model,
                    "system_fingerprint": "fp_emulator", "choices": choices, **extra})

    def open(self, ask: Ask) -> bytes:
        if ask.completions:
            return b""
        return self._chunk(ask, [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                                  "logprobs": None, "finish_reason": None}])

    def token(self, ask: Ask, text: str, index: int) -> bytes:
        if ask.completions:
            return self._chunk(ask, [{"index": 0, "text": text, "logprobs": None, "finish_reason": None}])
        return self._chunk(ask, [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}])

    def close(self, ask: Ask, finish: str, output_tokens: int) -> bytes:
        reason = {"stop": "stop", "length": "length", "filter": "content_filter"}[finish]
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": reason}
        if ask.completions:
            choice["text"] = ""
        else:
            choice["delta"] = {}
        out = self._chunk(ask, [choice])
        if ask.include_usage:
            out += self._chunk(ask, [], usage=self._usage(ask, output_tokens))
        return out

    def terminator(self, ask: Ask, finish: str, output_tokens: int) -> bytes:
        return b"data: [DONE]\n\n"

    def malformed(self, ask: Ask) -> bytes:
        return b'data: {"id":"chatcmpl-' + ask.id.encode() + b'","choices":[{"delta":{"content":"\n\n'

    def _usage(self, ask: Ask, output_tokens: int) -> dict[str, int]:
        return {"prompt_tokens": ask.input_tokens, "completion_tokens": output_tokens,
                "total_tokens": ask.input_tokens + output_tokens}

    def complete(self, ask: Ask, text: str, finish: str, output_tokens: int) -> dict[str, Any]:
        reason = {"stop": "stop", "length": "length", "filter": "content_filter"}[finish]
        if ask.completions:
            choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
            obj = "text_completion"
        else:
            choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                      "logprobs": None, "finish_reason": reason}
            obj = "chat.completion"
        return {"id": f"chatcmpl-{ask.id}", "object": obj, "created": ask.created, "model": ask.model,
                "system_fingerprint": "fp_emulator", "choices": [choice], "usage": self._usage(ask, output_tokens)}

    def refusal_voice(self, ask: Ask) -> OpenAISpeaker | None:
        """Chat Completions has a refusal field (platform.openai.com/docs/guides/structured-outputs/refusals;
        the API reference's ``choices[].message.refusal`` and ``choices[].delta.refusal``); the legacy
        completions API has none."""
        return None if ask.completions else _REFUSING

    def models(self, entries: list[Listed], next_page: str | None = None, *,
               variant: str | None = None) -> dict[str, Any]:
        """``GET /v1/models``: ``{"object": "list", "data": [{id, object, created, owned_by}]}``, one page, no
        retirement field (OpenAI dates shutdowns on its Deprecations page): `RETIRES_FIELD`. Azure's "Models -
        List" (``variant="azure"``) carries its own: ``lifecycle_status``
        and ``deprecation.inference`` (Unix seconds)."""
        azure = variant == "azure"
        data = []
        for e in entries:
            item: dict[str, Any] = {"id": e.name, "object": "model", "created": 1700000000, "owned_by": "emulator"}
            if azure:
                item.update({"status": "succeeded", "capabilities": {"chat_completion": True, "inference": True},
                             "lifecycle_status": "deprecating" if e.retires else "generally-available",
                             "created_at": 1700000000})
                if e.retires:
                    item["deprecation"] = {"inference": _epoch(e.retires)}
            else:
                item.update(retiring(e))
            data.append(item)
        return {"object": "list", "data": data}


class _Refusing(OpenAISpeaker):
    """The answer's text in the refusal field, ``content`` null: how a chat completion declines."""

    def token(self, ask: Ask, text: str, index: int) -> bytes:
        return self._chunk(ask, [{"index": 0, "delta": {"refusal": text}, "logprobs": None, "finish_reason": None}])

    def complete(self, ask: Ask, text: str, finish: str, output_tokens: int) -> dict[str, Any]:
        body = super().complete(ask, text, finish, output_tokens)
        body["choices"][0]["message"].update(content=None, refusal=text)
        return body


_REFUSING = _Refusing()


def _epoch(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), time(), UTC).timestamp())


SPEAKER = OpenAISpeaker()
