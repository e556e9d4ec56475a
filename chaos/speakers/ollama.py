"""Ollama ``/api/chat`` and ``/api/generate``, server side.

Formats as in `probes.dialects.ollama` (whose docstring cites the sources): NDJSON, a
final object with ``done: true``, ``done_reason`` and nanosecond durations; errors
``{"error": "<text>"}``; 503 when the queue is full; an error mid-stream is one more line.
Ollama has no content filter, so ``content_filtered`` is not rendered for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chaos.speakers.base import Ask, Speaking, Stated, retiring
from chaos.speakers.reading import last_user
from chaos.speakers.serving import EmulatorRoute, Listed

ERRORS: dict[str, Stated] = {
    "overloaded": Stated(503, "server busy, please try again.  maximum pending requests exceeded"),
    "rate_limited": Stated(429, "too many requests, please slow down"),
    "quota_exhausted": Stated(402, "you have reached your usage limit for this billing period (quota)"),
    "auth": Stated(401, "unauthorized"),
    "model_not_found": Stated(404, "model '{model}' not found"),
    "bad_request": Stated(400, "{message}"),
    "context_too_long": Stated(400, "the input is too long for the model's context length"),
}
# One spent-money form (402): no credit- or day-specific one is documented.
ERRORS["credit_exhausted"] = ERRORS["daily_quota"] = ERRORS["quota_exhausted"]


def _line(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


class OllamaSpeaker(Speaking):
    name = "ollama"
    content_type = "application/x-ndjson"
    errors = ERRORS
    unsupported = frozenset({"content_filtered"})
    stream_error_frame = (b"", b"")  # an error mid-stream is one more NDJSON line
    routes = (EmulatorRoute("POST", "/api/chat", "generate"), EmulatorRoute("POST", "/api/generate", "generate"),
              EmulatorRoute("GET", "/api/tags", "listing"))

    def error_body(self, kind: str, stated: Stated, ask: Ask | None, wait: float) -> bytes:
        return _line({"error": stated.message})

    def ask_of(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> Ask:
        """``/api/chat`` (messages) or ``/api/generate`` (one prompt); Ollama streams unless told not to."""
        generate = path.endswith("/generate")
        prompt = body.get("prompt", "") if generate else last_user(body.get("messages"))
        options = body.get("options") or {}
        return Ask(model=body.get("model", ""), prompt=prompt, max_tokens=options.get("num_predict") or 64,
                   stream=body.get("stream", True) is not False, completions=generate)

    def _obj(self, ask: Ask, text: str, **extra: Any) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if ask.completions:
            return {"model": ask.model, "created_at": now, "response": text, **extra}
        return {"model": ask.model, "created_at": now, "message": {"role": "assistant", "content": text}, **extra}

    def open(self, ask: Ask) -> bytes:
        return b""

    def token(self, ask: Ask, text: str, index: int) -> bytes:
        return _line(self._obj(ask, text, done=False))

    def close(self, ask: Ask, finish: str, output_tokens: int) -> bytes:
        return b""

    def terminator(self, ask: Ask, finish: str, output_tokens: int) -> bytes:
        elapsed = max(1, int((time.time() - ask.created) * 1e9))
        return _line(self._obj(ask, "", done=True, done_reason="length" if finish == "length" else "stop",
                               total_duration=elapsed, load_duration=1000, prompt_eval_count=ask.input_tokens,
                               prompt_eval_duration=1000, eval_count=output_tokens, eval_duration=elapsed))

    def malformed(self, ask: Ask) -> bytes:
        return b'{"model":"' + ask.model.encode() + b'","message":{"role":"assis\n'

    def complete(self, ask: Ask, text: str, finish: str, output_tokens: int) -> dict[str, Any]:
        return self._obj(ask, text, done=True, done_reason="length" if finish == "length" else "stop",
                         prompt_eval_count=ask.input_tokens, eval_count=output_tokens)

    def models(self, entries: list[Listed], next_page: str | None = None, *,
               variant: str | None = None) -> dict[str, Any]:
        """``/api/tags``: ``models`` of ``{name, model, modified_at, size, digest, details}``, one page. Local
        models do not retire; `RETIRES_FIELD` only when the emulator is told to."""
        return {"models": [{"name": e.name, "model": e.name, "modified_at": "2025-01-01T00:00:00Z", "size": 1,
                            "digest": "0" * 64, "details": {"format": "gguf", "family": "emulated"}, **retiring(e)}
                           for e in entries]}


SPEAKER = OllamaSpeaker()
