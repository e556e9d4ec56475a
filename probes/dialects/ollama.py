"""Ollama's native chat API (``/api/chat``), newline-delimited JSON.

Wire format, from the Ollama API docs (github.com/ollama/ollama docs/api.md, and
docs.ollama.com/api: "Generate a chat completion", "Streaming", "Errors", "Usage"):
- ``POST /api/chat`` with ``stream: true`` answers ``application/x-ndjson``: one object per
  line with ``message.content``; the last has ``done: true``, ``done_reason`` (stop | length)
  and ``prompt_eval_count``/``eval_count`` token counts (durations in nanoseconds).
- Errors are ``{"error": "<text>"}`` with 400, 404 (``model "x" not found``), 500, and 503
  when the server's queue is full; an error while streaming is one more line holding
  ``{"error": ...}`` and no ``done: true``.
- ``options.num_predict`` caps output tokens; ``options.temperature``.
- Non-streaming answers (`parse_body`): with ``stream: false`` the same endpoint answers
  ``application/json``, one object shaped like the stream's last (``message.content`` holding
  the whole text, ``done: true``, ``done_reason``, the counts); ollama-python
  ``ollama/_types.py`` (``ChatResponse``). A body of NDJSON lines relabelled as JSON by a proxy
  is read line by line as the stream it is.
- Model listing: "List Local Models", ``GET /api/tags`` answers ``{"models": [{"name", "model",
  "modified_at", "size", "digest", "details"}]}``, the models pulled to this server.

A conversation (`probes.conversation.Conversation`), from the same "Generate a chat completion"
section and docs/modelfile.md ("Valid Parameters and Values"): ``messages`` with the system
prompt first as ``{"role": "system"}``, then ``user``/``assistant`` turns; the parameters go in
``options`` under the model-file names ``num_predict``, ``temperature``, ``top_p`` and ``stop``
(a list); ollama-python ``ollama/_types.py`` (``Options``) agrees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import httpx

from probes.dialects import base
from probes.dialects.base import Chunk, Finish, ProviderError, RequestSpec, checked, loads, present
from probes.framing import Event, NDJSONParser
from probes.target import Target

if TYPE_CHECKING:
    from probes.conversation import Conversation

# Ollama's error bodies are ``{"error": "<text>"}``, no type or code: the status decides.
ERRORS: base.ErrorTable = {}
_FINISH: dict[str, Finish] = {"stop": "stop", "length": "length"}


class OllamaDialect:
    name = "ollama"
    framing: Literal["ndjson"] = "ndjson"
    errors = ERRORS

    def build_request(self, target: Target, prompt: str, *, api_key: str | None,
                      conversation: Conversation | None = None) -> RequestSpec:
        # A key for Ollama's hosted API and for authenticating reverse proxies.
        headers = base.request_headers(target, api_key, "authorization", scheme="Bearer ",
                                       accept="application/x-ndjson")
        if conversation is None:
            body: dict[str, Any] = {
                "model": target.model,
                "stream": True,
                "messages": [{"role": "user", "content": prompt}],
                "options": {"num_predict": target.max_tokens, "temperature": 0},
            }
        else:
            c = conversation
            system = [{"role": "system", "content": c.system}] if c.system else []
            body = {"model": target.model, "stream": True,
                    "messages": [*system, *({"role": role, "content": text} for role, text in c.messages)],
                    "options": {"num_predict": c.max_tokens_for(target),
                                **present(temperature=c.temperature, top_p=c.top_p, stop=list(c.stop) or None)}}
        return RequestSpec("POST", f"{target.base_url.rstrip('/')}/api/chat", headers, body)

    @checked
    def parse_event(self, event: Event) -> Chunk:
        data = loads(event.data)
        if not isinstance(data, dict):
            raise ValueError(f"line is not a JSON object: {event.data[:80]!r}")
        if "error" in data:
            return Chunk(error=_error_from(data, None, event.data))
        message = data.get("message")  # /api/chat; /api/generate streams "response" instead
        text = (message.get("content") if isinstance(message, dict) else data.get("response")) or ""
        chunk = Chunk(text=text)
        if data.get("done"):
            raw = data.get("done_reason") or "stop"
            chunk.done = True
            chunk.finish_raw = raw
            chunk.finish = _FINISH.get(raw, "other")
            chunk.input_tokens = data.get("prompt_eval_count")
            chunk.output_tokens = data.get("eval_count")
        return chunk

    @checked
    def parse_body(self, body: bytes) -> Chunk:
        parser = NDJSONParser()
        events = [*parser.feed(body), *parser.close()]
        if not events:
            raise ValueError(f"malformed JSON (an empty answer body): {body[:80]!r}")
        chunk = base.merge([self.parse_event(event) for event in events])
        if not chunk.done and chunk.error is None:
            raise ValueError(f"answer has no \"done\": true: {body[:80]!r}")
        return chunk

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        return base.parse_error(_error_from, status, headers, body)

    def models_request(self, target: Target, *, api_key: str | None, page: str | None = None) -> RequestSpec:
        return base.listing_request(self, target, api_key, "/api/tags")

    def parse_models(self, body: bytes) -> base.ModelPage:
        _, items = base.listing_object(body, "models")
        return base.listing(items, _listed)


def _error_from(data: Any, status: int | None, fallback: str) -> ProviderError:
    if isinstance(data, dict) and "error" in data:
        inner = data["error"]
        message = inner.get("message") if isinstance(inner, dict) else inner
        return ProviderError(http_status=status, message=message)
    return ProviderError(http_status=status, message=fallback)


def _listed(item: dict[str, Any]) -> base.ListedModel | None:
    """One ``/api/tags`` entry ``{name, model, modified_at, size, digest, details}``: models pulled to this
    server, which do not retire (only the emulator's `RETIRES_FIELD`)."""
    name = base.listed_name(item.get("name")) or base.listed_name(item.get("model"))
    return None if name is None else base.ListedModel(name, base.iso_day(item.get(base.RETIRES_FIELD)))


DIALECT = OllamaDialect()
