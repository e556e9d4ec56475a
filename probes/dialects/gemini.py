"""Google Gemini API (Generative Language), ``streamGenerateContent?alt=sse``.

Wire format, from:
- Gemini API reference "Generating content" (ai.google.dev/api/generate-content):
  ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` with the key in
  ``x-goog-api-key``; each SSE ``data:`` event is a GenerateContentResponse
  (``candidates[].content.parts[].text``, ``candidates[].finishReason``, ``usageMetadata``
  with ``promptTokenCount``/``candidatesTokenCount``, ``promptFeedback.blockReason``);
  ``generationConfig.maxOutputTokens``. There is no ``[DONE]``: the end of the body ends
  the stream, and the last chunk carries ``finishReason``.
- Gemini API "Troubleshooting" / google.rpc.Status: errors are
  ``{"error": {"code", "message", "status", "details": [{"@type": ...}]}}`` with status
  INVALID_ARGUMENT 400 (also a bad API key, reason API_KEY_INVALID), PERMISSION_DENIED 403,
  NOT_FOUND 404, RESOURCE_EXHAUSTED 429 (``google.rpc.RetryInfo.retryDelay`` e.g. "26s"),
  INTERNAL 500, UNAVAILABLE 503 ("The model is overloaded"), DEADLINE_EXCEEDED 504.
- Gemini API "Rate limits" (ai.google.dev/gemini-api/docs/rate-limits): limits per minute (RPM,
  TPM) and per day (RPD); a 429 names the limit it hit in ``google.rpc.QuotaFailure``
  ``violations[].quotaId`` (``...PerMinute...`` or ``...PerDay...``), which is kept as
  `ProviderError.quota` and shown in the message (a spent day's quota is not a burst).
- google-genai ``google/genai/_api_client.py``: a stream that fails mid-way ends in a bare,
  pretty-printed error object without ``data:`` (read here as a stray block).
- FinishReason enum: STOP, MAX_TOKENS, SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, ...

Model listings: ``models.list`` (ai.google.dev/api/models): ``GET /v1beta/models`` with
``pageSize`` (at most 1000) and ``pageToken``; ``{"models": [Model], "nextPageToken"}``.

Non-streaming answers (`parse_body`, for gateways that ignore ``alt=sse``), from the same
reference: ``generateContent`` answers one GenerateContentResponse (the shape of a stream
event), and ``streamGenerateContent`` without ``alt=sse`` answers a JSON array of them;
google-genai ``google/genai/types.py`` (``GenerateContentResponse``: ``candidates``,
``prompt_feedback``, ``usage_metadata``). A body with none of ``candidates``,
``promptFeedback`` or ``error`` is not an answer.

A conversation (`probes.conversation.Conversation`), from the same reference
(``GenerateContentRequest``: ``contents``, ``systemInstruction``, ``generationConfig``) and
``GenerationConfig`` (``maxOutputTokens``, ``temperature`` 0 to 2, ``topP``,
``stopSequences``, up to 5), with the "System instructions" and multi-turn chat guides: the
system prompt is ``systemInstruction: {"parts": [{"text"}]}``; each turn is a Content whose
role is ``user`` or ``model`` (the assistant's). google-genai ``google/genai/types.py``
(``Content.role``: "user" or "model") agrees.
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

# google.rpc status names (the ``status`` of an error body), as kinds.
ERRORS: base.ErrorTable = {
    "UNAVAILABLE": ErrorKind.OVERLOADED,
    "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMITED,
    "PERMISSION_DENIED": ErrorKind.AUTH,
    "UNAUTHENTICATED": ErrorKind.AUTH,
    "NOT_FOUND": ErrorKind.MODEL_NOT_FOUND,
    "INVALID_ARGUMENT": ErrorKind.BAD_REQUEST,
    "FAILED_PRECONDITION": ErrorKind.BAD_REQUEST,
    "INTERNAL": ErrorKind.SERVER_ERROR,
    "UNKNOWN": ErrorKind.SERVER_ERROR,
    "DEADLINE_EXCEEDED": ErrorKind.SERVER_ERROR,
    "CANCELLED": ErrorKind.STREAM_ERROR,
}
_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
_FINISH: dict[str, Finish] = {"STOP": "stop", "MAX_TOKENS": "length"}
_ROLES = {"user": "user", "assistant": "model"}


class GeminiDialect:
    name = "gemini"
    framing: Literal["sse"] = "sse"
    errors = ERRORS

    def build_request(self, target: Target, prompt: str, *, api_key: str | None,
                      conversation: Conversation | None = None) -> RequestSpec:
        headers = base.request_headers(target, api_key, "x-goog-api-key")
        if conversation is None:
            body: dict[str, Any] = {
                "contents": [{"role": "user", "parts": [{"text": prompt}]}],
                "generationConfig": {"maxOutputTokens": target.max_tokens, "temperature": 0},
            }
        else:
            c = conversation
            body = {"contents": [{"role": _ROLES[role], "parts": [{"text": text}]} for role, text in c.messages],
                    "generationConfig": {"maxOutputTokens": c.max_tokens_for(target),
                                         **present(temperature=c.temperature, topP=c.top_p,
                                                   stopSequences=list(c.stop) or None)}}
            if c.system:
                body["systemInstruction"] = {"parts": [{"text": c.system}]}
        url = f"{target.base_url.rstrip('/')}/models/{target.model}:streamGenerateContent"
        return RequestSpec("POST", url, headers, body, {"alt": "sse"})

    @checked
    def parse_event(self, event: Event) -> Chunk:
        if event.stray:
            return Chunk(error=_error_from(body_json(event.data.encode()), None, event.data))
        data = loads(event.data)
        if not isinstance(data, dict):
            raise ValueError(f"event is not a JSON object: {event.data[:80]!r}")
        return _read(data, event.data)

    @checked
    def parse_body(self, body: bytes) -> Chunk:
        data = loads(body)
        items = data if isinstance(data, list) else [data]
        if not items or not all(
            isinstance(item, dict) and ("candidates" in item or "promptFeedback" in item or "error" in item)
            for item in items
        ):
            raise ValueError(f"answer has no candidates: {body[:80]!r}")
        chunk = base.merge([_read(item, base.error_text(body)) for item in items])
        chunk.done = True
        return chunk

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        return base.parse_error(_error_from, status, headers, body)

    def models_request(self, target: Target, *, api_key: str | None, page: str | None = None) -> RequestSpec:
        params = {"pageSize": "1000", **({"pageToken": page} if page else {})}
        return base.listing_request(self, target, api_key, "/models", params)

    def parse_models(self, body: bytes) -> base.ModelPage:
        data, items = base.listing_object(body, "models")
        page = base.listing(items, _listed)
        return base.ModelPage(page.models, base.page_token(data.get("nextPageToken")))


def _read(data: dict, text: str) -> Chunk:
    """One GenerateContentResponse (a stream event, or a whole answer); ``text`` is its raw form."""
    if "error" in data:
        return Chunk(error=_error_from(data, None, text))
    chunk = Chunk()
    if usage := data.get("usageMetadata"):
        chunk.input_tokens = usage.get("promptTokenCount")
        chunk.output_tokens = usage.get("candidatesTokenCount")
    if blocked := (data.get("promptFeedback") or {}).get("blockReason"):
        chunk.finish, chunk.finish_raw, chunk.done = "filter", blocked, True
        return chunk
    for cand in data.get("candidates") or ():
        for part in (cand.get("content") or {}).get("parts") or ():
            if not part.get("thought"):
                chunk.text += part.get("text") or ""
        if raw := cand.get("finishReason"):
            chunk.finish_raw = raw
            chunk.finish = "filter" if raw in _FILTERED else _FINISH.get(raw, "other")
            # Gemini has no end marker; the chunk with finishReason is the last one sent
            # (older servers repeat it on every chunk, which only moves "done" earlier).
            chunk.done = True
    return chunk


def _error_from(data: Any, status: int | None, fallback: str) -> ProviderError:
    inner = data.get("error") if isinstance(data, dict) else None
    if not isinstance(inner, dict):
        return ProviderError(http_status=status, message=fallback)
    reason = None
    retry = None
    quotas: list[str] = []
    details = inner.get("details")
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        reason = reason or detail.get("reason")
        if delay := detail.get("retryDelay"):
            retry = _seconds(delay)
        quotas.extend(_quota_ids(detail))
    # A per-day quota spent outweighs a per-minute one hit in the same answer: name it first.
    quotas.sort(key=lambda q: "perday" not in q.lower())
    message = inner.get("message") or fallback
    if quotas:  # the message itself never says which window ran out; the quota id does
        message = f"{base.text_of(message)[:200]} (quota {quotas[0]})"
    return ProviderError(
        http_status=status,
        type=inner.get("status"),
        code=reason,
        message=message,
        retry_after_s=retry,
        quota=quotas[0] if quotas else None,
    )


def _quota_ids(detail: dict) -> list[str]:
    """The quotas a google.rpc detail names: QuotaFailure ``violations[].quotaId`` (the current form), or an
    ErrorInfo's ``metadata.quota_limit`` (the older one, e.g. GenerateContentRequestsPerMinutePerProjectPerRegion)."""
    found = []
    violations = detail.get("violations")
    for violation in violations[:20] if isinstance(violations, list) else ():
        if isinstance(violation, dict) and isinstance(quota := violation.get("quotaId"), str):
            found.append(quota)
    metadata = detail.get("metadata")
    if isinstance(metadata, dict) and isinstance(quota := metadata.get("quota_limit"), str):
        found.append(quota)
    return [q[:120] for q in found if q]


def _seconds(duration: Any) -> float | None:
    """A protobuf Duration in JSON form, e.g. "26s" or "0.5s"; ``None`` unless a finite, non-negative time."""
    if not isinstance(duration, str) or not duration.endswith("s"):
        return None
    return base.seconds(duration[:-1])


def _listed(item: dict[str, Any]) -> base.ListedModel | None:
    """One Model resource, named ``models/{model}`` (the id a request uses is the part after ``models/``).
    The resource (name, baseModelId, version, displayName, description, token limits,
    supportedGenerationMethods, ...) has no end-of-life field: Google lists shutdown dates on its
    "Gemini deprecations" page; the emulator's `RETIRES_FIELD` stands in."""
    name = base.listed_name(item.get("name"))
    if name is None:
        return None
    return base.ListedModel(name.removeprefix("models/"), base.iso_day(item.get(base.RETIRES_FIELD)))


DIALECT = GeminiDialect()
