"""Gemini API ``streamGenerateContent?alt=sse`` and ``generateContent``, server side.

Formats as in `probes.dialects.gemini` (whose docstring cites the sources): ``data:``
events separated by CRLF CRLF as Google's servers send them, no ``[DONE]``,
``finishReason`` and ``usageMetadata`` on the last chunk; google.rpc.Status errors
(UNAVAILABLE 503, RESOURCE_EXHAUSTED 429 with RetryInfo, INVALID_ARGUMENT 400 with
reason API_KEY_INVALID, NOT_FOUND 404, INTERNAL 500); a stream that fails mid-way ends
in a bare pretty-printed error object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from chaos.speakers.base import Ask, Speaking, Stated, retiring
from chaos.speakers.reading import BadRequest, last_user
from chaos.speakers.serving import EmulatorRoute, Listed, Paging

ERRORS: dict[str, Stated] = {
    "overloaded": Stated(503, "The model is overloaded. Please try again later.", "UNAVAILABLE"),
    "rate_limited": Stated(429, "Resource has been exhausted (e.g. check quota).", "RESOURCE_EXHAUSTED"),
    "quota_exhausted": Stated(429, "You exceeded your current quota, please check your plan and billing details.",
                              "RESOURCE_EXHAUSTED"),
    "auth": Stated(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT"),
    "model_not_found": Stated(404, "models/{model} is not found for API version v1beta.", "NOT_FOUND"),
    "bad_request": Stated(400, "{message}", "INVALID_ARGUMENT"),
    "context_too_long": Stated(400, "The input token count (1200000) exceeds the maximum number of tokens allowed "
                                    "(1048576).", "INVALID_ARGUMENT"),
}
# A spent day's quota: the usual 429 text; the QuotaFailure detail names the PerDay quota (added below).
ERRORS["daily_quota"] = ERRORS["quota_exhausted"]
ERRORS["credit_exhausted"] = ERRORS["quota_exhausted"]  # prepaid billing states no form of its own
_STATUS_NAME = {500: "INTERNAL", 502: "INTERNAL", 503: "INTERNAL", 504: "DEADLINE_EXCEEDED"}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "filter": "SAFETY"}
_METHOD = re.compile(r"/models/(?P<model>[^/:]+):(?P<action>\w+)$")
_ROLES = ("user", "model")  # Content.role: "Must be either 'user' or 'model'" (or unset, for one turn)


def _event(data: Any) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\r\n\r\n"


class GeminiSpeaker(Speaking):
    name = "gemini"
    content_type = "text/event-stream"
    errors = ERRORS
    # A stream that fails mid-way ends in the bare pretty-printed google.rpc.Status, no "data:".
    stream_error_frame = (b"", b"\n")
    routes = (EmulatorRoute("POST", "/models/{model}:{action}", "generate"),
              EmulatorRoute("GET", "/models", "listing"))
    paging = Paging("pageSize", "pageToken", 50)  # models.list: pageSize (default 50) and pageToken
    sdk_suffix = "/v1beta"  # google-genai appends /v1beta/models/... to its base URL

    def server_error(self, status: int) -> Stated:
        return replace(super().server_error(status), type=_STATUS_NAME.get(status, "INTERNAL"))

    def error_headers(self, kind: str, stated: Stated, ask: Ask | None, wait: float) -> dict[str, str]:
        return {}  # the retry hint is RetryInfo in the body

    def error_body(self, kind: str, stated: Stated, ask: Ask | None, wait: float) -> bytes:
        error: dict[str, Any] = {"code": stated.status, "message": stated.message, "status": stated.type}
        if kind == "auth":
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                 "domain": "googleapis.com"}]
        elif kind == "rate_limited":
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{wait:g}s"}]
        elif kind == "daily_quota":
            # As the API sends it (ai.google.dev/gemini-api/docs/rate-limits): a QuotaFailure naming the
            # per-day quota, and a RetryInfo all the same, which waiting a few seconds will not honour.
            model = ask.model if ask else "gemini"
            error["details"] = [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                    "quotaDimensions": {"location": "global", "model": model}, "quotaValue": "250"}]},
                {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}]
        return json.dumps({"error": error}, indent=2).encode()

    def ask_of(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> Ask:
        """``models/{model}:generateContent`` or ``:streamGenerateContent``; the model is in the path."""
        match = _METHOD.search(path)
        if match is None or match["action"] not in ("generateContent", "streamGenerateContent"):
            raise BadRequest(f"unknown method {match['action'] if match else path}")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise BadRequest("contents is not specified")
        config = body.get("generationConfig") or {}
        prompt = last_user(contents, _ROLES, field="contents", content="parts")
        return Ask(model=match["model"], prompt=prompt, max_tokens=config.get("maxOutputTokens") or 64,
                   stream=match["action"] == "streamGenerateContent")

    def _chunk(self, ask: Ask, text: str, finish: str | None = None, output_tokens: int | None = None) -> dict:
        cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if finish:
            cand["finishReason"] = _FINISH[finish]
        chunk: dict[str, Any] = {"candidates": [cand], "modelVersion": ask.model, "responseId": ask.id}
        if output_tokens is not None:
            chunk["usageMetadata"] = {"promptTokenCount": ask.input_tokens, "candidatesTokenCount": output_tokens,
                                      "totalTokenCount": ask.input_tokens + output_tokens}
        return chunk

    def open(self, ask: Ask) -> bytes:
        return b""

    def token(self, ask: Ask, text: str, index: int) -> bytes:
        return _event(self._chunk(ask, text))

    def close(self, ask: Ask, finish: str, output_tokens: int) -> bytes:
        # Gemini's end of stream is the chunk carrying finishReason; the body then ends.
        return b""

    def terminator(self, ask: Ask, finish: str, output_tokens: int) -> bytes:
        return _event(self._chunk(ask, "", finish, output_tokens))

    def malformed(self, ask: Ask) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": \r\n\r\n'

    def complete(self, ask: Ask, text: str, finish: str, output_tokens: int) -> dict[str, Any]:
        return self._chunk(ask, text, finish, output_tokens)

    def models(self, entries: list[Listed], next_page: str | None = None, *,
               variant: str | None = None) -> dict[str, Any]:
        """A ``models.list`` page: ``models`` of Model resources (``name: models/{id}``, ``baseModelId``,
        ``displayName``, token limits, ``supportedGenerationMethods``) and ``nextPageToken``. The Model resource
        has no retirement field: `RETIRES_FIELD`."""
        models = [{"name": f"models/{e.name}", "baseModelId": e.name, "version": "001", "displayName": e.name,
                   "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
                   "supportedGenerationMethods": ["generateContent", "streamGenerateContent"], **retiring(e)}
                  for e in entries]
        return {"models": models, **({"nextPageToken": next_page} if next_page else {})}


SPEAKER = GeminiSpeaker()
