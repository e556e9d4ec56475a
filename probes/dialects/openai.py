"""OpenAI Chat Completions streaming, and everything that speaks it.

Covers OpenAI, Azure OpenAI, and the OpenAI-compatible servers in the catalog (Mistral,
Groq, Together, DeepSeek, OpenRouter, Fireworks, vLLM, llama.cpp's ``llama-server``).

Wire format, from:
- OpenAI API reference, "Create chat completion" and "The chat completion chunk object"
  (platform.openai.com/docs/api-reference/chat/create, .../chat-streaming): ``stream``,
  ``stream_options.include_usage`` (the last chunk then has ``choices: []`` and only
  ``usage``), ``max_tokens``, ``finish_reason`` in stop|length|content_filter|tool_calls.
- openai-python ``src/openai/_streaming.py``: events are bare ``data:`` lines, the stream
  ends with ``data: [DONE]`` (``sse.data.startswith("[DONE]")``), and any chunk carrying
  an ``error`` key is an error inside a 200 stream. ``Stream.__stream__`` only breaks early
  on ``[DONE]``; a body that ends without it ends the loop just the same, so a stream whose
  last chunk carried ``finish_reason`` is complete to the SDK, and to us. ``src/openai/_base_client.py``: retry
  hints ``retry-after-ms``, ``retry-after``, ``x-should-retry``.
- OpenAI "Error codes" guide: 401 invalid_api_key, 429 rate_limit_exceeded vs
  insufficient_quota (not retryable), 500 server_error, 503 "engine is overloaded".
- Azure OpenAI REST reference (learn.microsoft.com/azure/ai-services/openai/reference):
  ``POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``
  with an ``api-key`` header; "Content streaming" page: a first event with ``choices: []``
  and ``prompt_filter_results``, and ``finish_reason: content_filter`` on a filtered stream.
- vLLM (older servers) put errors at the top level: ``{"object": "error", "message": ...}``.

Model listings (`models_request`, `parse_models`): OpenAI "List models" (``GET /v1/models``:
``{"object": "list", "data": [{"id", "object", "created", "owned_by"}]}``, no pagination and no
retirement field: OpenAI publishes shutdown dates on its "Deprecations" page only), the same
``/models`` on the compatible servers; Azure OpenAI "Models - List" (``GET {endpoint}/openai/models
?api-version=``, entries with ``lifecycle_status`` and ``deprecation: {"fine_tune", "inference"}`` in
Unix seconds, learn.microsoft.com/rest/api/azureopenai/models/list); Mistral's ``GET /v1/models``
(docs.mistral.ai/api, Models: entries add ``deprecation`` as an ISO 8601 time, ``archived`` and
``aliases``).

A conversation (`probes.conversation.Conversation`), from the same "Create chat completion"
reference: ``messages`` in order, the system prompt first as ``{"role": "system"}`` (which
reasoning models read as ``developer``), then ``user``/``assistant`` turns; ``temperature``
(0 to 2), ``top_p``, ``stop`` (an array, up to 4), ``max_tokens`` (or
``max_completion_tokens``); openai-python ``src/openai/types/chat/completion_create_params.py``.
The legacy ``/v1/completions`` ("Create completion") takes one ``prompt`` string and the same
``max_tokens``/``temperature``/``top_p``/``stop``: the conversation is sent as one text
(`Conversation.as_text`).

Non-streaming answers (`parse_body`, for gateways that ignore ``stream``), from:
- OpenAI API reference, "The chat completion object": ``{"object": "chat.completion",
  "choices": [{"index", "message": {"role", "content", "refusal"}, "finish_reason"}],
  "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}``; "The completion
  object" (legacy ``/v1/completions``): ``choices[].text`` and ``finish_reason``.
- openai-python ``src/openai/types/chat/chat_completion.py`` (``Choice.message``,
  ``Choice.finish_reason``), ``.../chat/chat_completion_message.py`` (``content``,
  ``refusal``), ``src/openai/types/completion.py`` and ``completion_choice.py`` (``text``).
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

# The error codes and types of the "Error codes" guide, as kinds.
ERRORS: base.ErrorTable = {
    "insufficient_quota": ErrorKind.QUOTA_EXHAUSTED,
    "invalid_api_key": ErrorKind.AUTH,
    "authentication_error": ErrorKind.AUTH,
    "model_not_found": ErrorKind.MODEL_NOT_FOUND,
    "context_length_exceeded": ErrorKind.CONTEXT_TOO_LONG,
    "content_filter": ErrorKind.CONTENT_FILTERED,
    # 400 "Your request was rejected as a result of our safety system" (images, moderated prompts)
    "content_policy_violation": ErrorKind.CONTENT_FILTERED,
    "refusal": ErrorKind.CONTENT_FILTERED,  # the model declined in delta.refusal (our dialect's label)
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "server_error": ErrorKind.SERVER_ERROR,  # also OpenAI's overloaded 503; classify's _refine tells them apart
}
_FINISH: dict[str, Finish] = {"stop": "stop", "length": "length", "content_filter": "filter"}


class OpenAIDialect:
    name = "openai"
    framing: Literal["sse"] = "sse"
    errors = ERRORS

    def build_request(self, target: Target, prompt: str, *, api_key: str | None,
                      conversation: Conversation | None = None) -> RequestSpec:
        opts = target.options
        root = target.base_url.rstrip("/")
        azure = bool(opts.get("azure"))
        if azure:  # Azure takes the key in api-key, OpenAI and the compatible servers as a bearer token
            headers = base.request_headers(target, api_key, "api-key")
        else:
            headers = base.request_headers(target, api_key, "authorization", scheme="Bearer ")
        params: dict[str, str] = {}
        completions = opts.get("mode") == "completions"
        endpoint = "completions" if completions else "chat/completions"
        if azure:
            deployment = opts.get("deployment") or target.model
            url = f"{root}/openai/deployments/{deployment}/{endpoint}"
            params["api-version"] = str(opts.get("api_version", "2024-10-21"))
        else:
            url = f"{root}/{endpoint}"
        # Reasoning models reject max_tokens and want max_completion_tokens.
        max_field = opts.get("max_tokens_field", "max_tokens")
        body: dict[str, Any] = {"model": target.model, "stream": True, "stream_options": {"include_usage": True}}
        if conversation is None:
            body.update({"temperature": 0, max_field: target.max_tokens})
            if completions:
                body["prompt"] = prompt
            else:
                body["messages"] = [{"role": "user", "content": prompt}]
            return RequestSpec("POST", url, headers, body, params)
        c = conversation
        if completions:
            body["prompt"] = c.as_text()
        else:
            system = [{"role": "system", "content": c.system}] if c.system else []
            body["messages"] = [*system, *({"role": role, "content": text} for role, text in c.messages)]
        body[max_field] = c.max_tokens_for(target)
        body.update(present(temperature=c.temperature, top_p=c.top_p, stop=list(c.stop) or None))
        return RequestSpec("POST", url, headers, body, params)

    @checked
    def parse_event(self, event: Event) -> Chunk:
        if event.stray:
            return Chunk(error=_error_from(body_json(event.data.encode()), None, event.data))
        if event.data.startswith("[DONE]"):
            return Chunk(done=True)
        data = loads(event.data)
        if not isinstance(data, dict):
            raise ValueError(f"chunk is not a JSON object: {event.data[:80]!r}")
        if "error" in data or data.get("object") == "error":
            return Chunk(error=_error_from(data, None, event.data))
        chunk = Chunk()
        if usage := data.get("usage"):
            chunk.input_tokens = usage.get("prompt_tokens")
            chunk.output_tokens = usage.get("completion_tokens")
        choices = data.get("choices")
        if choices is None:
            raise ValueError(f"chunk has no choices: {event.data[:80]!r}")
        _read_choices(chunk, choices, "delta")
        return chunk

    @checked
    def parse_body(self, body: bytes) -> Chunk:
        data = loads(body)
        if not isinstance(data, dict):
            raise ValueError(f"answer is not a JSON object: {body[:80]!r}")
        if "error" in data or data.get("object") == "error":
            return Chunk(error=_error_from(data, None, base.error_text(body)), done=True)
        choices = data.get("choices")
        if not isinstance(choices, list):
            raise ValueError(f"answer has no choices: {body[:80]!r}")
        chunk = Chunk(done=True)
        if usage := data.get("usage"):
            chunk.input_tokens = usage.get("prompt_tokens")
            chunk.output_tokens = usage.get("completion_tokens")
        _read_choices(chunk, choices, "message")
        return chunk

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        return base.parse_error(_error_from, status, headers, body)

    def models_request(self, target: Target, *, api_key: str | None, page: str | None = None) -> RequestSpec:
        if target.options.get("azure"):
            params = {"api-version": str(target.options.get("api_version", "2024-10-21"))}
            return base.listing_request(self, target, api_key, "/openai/models", params)
        return base.listing_request(self, target, api_key, "/models")

    def parse_models(self, body: bytes) -> base.ModelPage:
        _, items = base.listing_object(body, "data")
        return base.listing(items, _listed)


def _read_choices(chunk: Chunk, choices: Any, field: str) -> None:
    """Text, refusal and finish of ``choices``, each holding a ``delta`` (stream) or ``message`` (whole answer)."""
    for choice in choices:
        message = choice.get(field)
        if message is not None:
            chunk.text += message.get("content") or ""
            if refusal := message.get("refusal"):
                # Stated as an error, not a finish: the refusal is followed by an ordinary
                # finish_reason "stop" chunk, and the last finish read is the one kept.
                chunk.error = ProviderError(http_status=None, type="refusal", message=base.text_of(refusal))
        else:
            chunk.text += choice.get("text") or ""  # /v1/completions
        if raw := choice.get("finish_reason"):
            chunk.finish_raw = raw
            chunk.finish = _FINISH.get(raw, "other")


def _error_from(data: Any, status: int | None, fallback: str) -> ProviderError:
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict):
            return ProviderError(
                http_status=status,
                type=inner.get("type"),
                code=inner.get("code"),
                message=inner.get("message") or fallback,
            )
        if isinstance(inner, str):  # some compatible servers: {"error": "text"}
            return ProviderError(http_status=status, message=inner)
    return ProviderError(http_status=status, message=fallback)


def _listed(item: dict[str, Any]) -> list[base.ListedModel]:
    """One ``data`` entry: OpenAI's ``{id, object, created, owned_by}`` has no end-of-life field; Azure's
    adds ``deprecation.inference`` (Unix seconds: the day inference ends, i.e. retirement) and
    ``lifecycle_status``; Mistral's adds ``deprecation`` (an ISO 8601 time, the earliest day it publishes
    for the model's end, taken as the day to act by), ``archived`` and ``aliases`` (names the same model
    answers to, listed too). The emulator's `RETIRES_FIELD` stands in where there is none of these."""
    name = base.listed_name(item.get("id"))
    if name is None:
        return []
    deprecation = item.get("deprecation")
    if isinstance(deprecation, dict):
        retires = base.epoch_day(deprecation.get("inference"))
    else:
        retires = base.iso_day(deprecation)
    status = item.get("lifecycle_status")
    deprecated = status in ("deprecating", "deprecated") or retires is not None or item.get("archived") is True
    retires = retires or base.iso_day(item.get(base.RETIRES_FIELD))
    aliases = item.get("aliases")
    aliases = aliases[:20] if isinstance(aliases, list) else ()
    names = [name, *(a for a in aliases if base.listed_name(a) and a != name)]
    return [base.ListedModel(n, retires, deprecated=deprecated) for n in names]


DIALECT = OpenAIDialect()
