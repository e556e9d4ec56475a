"""The storefront: a small shop backend whose four AI features each depend on providers differently.

==============  ===========================  =====================================================
feature         primary                      when the primary fails
==============  ===========================  =====================================================
description     OpenAI chat completions      nothing: HTTP 503
chat            Anthropic Messages (stream)  the local model (a real model: ``degraded: false``)
tags            OpenAI chat completions      a keyword heuristic (``degraded: true``), never 503
search          the local model              nothing: HTTP 503
==============  ===========================  =====================================================

Providers are reached with raw ``httpx`` (no SDKs) through configurable base URLs, so a
drill can put the fault proxy in front of each one. Every outbound AI call carries
``X-AIRisk-Feature: <feature>``. An AI call has failed when it raises (timeouts
included), answers non-2xx, or gives no answer text; the product's own timeout
(``STOREFRONT_AI_TIMEOUT``) bounds each call as a whole as well as its connect and reads.

Answers are JSON: ``{"feature", "text", "backend", "degraded", "latency_ms", "primary_error", ...}``
on success, ``503 {"feature", "error", "backend": null, "latency_ms"}`` when the feature
cannot answer, ``400 {"feature", "error", "backend": null}`` for a bad request body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger("storefront")

FEATURE_HEADER = "X-AIRisk-Feature"
ANTHROPIC_VERSION = "2023-06-01"
MAX_INPUT_CHARS = 4000
MAX_ITEMS = 50
CATALOGUE = (
    "wireless headphones",
    "running shoes",
    "coffee grinder",
    "yoga mat",
    "desk lamp",
    "insulated water bottle",
    "hiking backpack",
    "mechanical keyboard",
)
# Keyword (matched at the start of a word, so "delay" also finds "delayed") -> tag.
KEYWORD_TAGS: dict[str, str] = {
    "broken": "damaged", "damaged": "damaged", "cracked": "damaged", "scratch": "damaged",
    "defect": "quality", "quality": "quality", "cheaply made": "quality", "flimsy": "quality",
    "late": "shipping", "delay": "shipping", "shipping": "shipping", "delivery": "shipping",
    "never arrived": "shipping", "package": "shipping",
    "refund": "refund", "money back": "refund", "return": "returns",
    "great": "positive", "love": "positive", "excellent": "positive", "perfect": "positive",
    "recommend": "positive", "awesome": "positive",
    "terrible": "negative", "awful": "negative", "worst": "negative", "disappoint": "negative",
    "price": "price", "expensive": "price", "cheap": "price", "value": "price",
    "size": "fit", "fit": "fit", "too small": "fit", "too big": "fit",
    "support": "customer-service", "customer service": "customer-service",
}
FEATURES = {
    "description": {"primary": "openai", "fallback": None},
    "chat": {"primary": "anthropic", "fallback": "local"},
    "tags": {"primary": "openai", "fallback": "heuristic"},
    "search": {"primary": "local", "fallback": None},
}


# -- settings ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Settings:
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_base_url: str = "https://api.anthropic.com"
    local_base_url: str = "http://127.0.0.1:8011/v1"  # the bundled local model (`airisk local`), OpenAI-compatible
    openai_api_key: str | None = None
    anthropic_api_key: str | None = None
    openai_model: str = "gpt-4o-mini"
    anthropic_model: str = "claude-haiku-4-5"
    local_model: str = "gemma-3-270m"
    ai_timeout: float = 5.0  # seconds per AI call: total, connect and read

    def __post_init__(self) -> None:
        if not self.ai_timeout > 0:
            raise ValueError(f"ai_timeout: must be a positive number of seconds, got {self.ai_timeout!r}")
        for name in ("openai_base_url", "anthropic_base_url", "local_base_url"):
            url = getattr(self, name)
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{name}: must start with http:// or https://, got {url!r}")
            object.__setattr__(self, name, url.rstrip("/"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``STOREFRONT_*``, ``OPENAI_API_KEY`` and ``ANTHROPIC_API_KEY``; unset or empty means the default."""
        env = os.environ if env is None else env
        fields: dict[str, Any] = {}
        for name, var in (
            ("openai_base_url", "STOREFRONT_OPENAI_BASE_URL"),
            ("anthropic_base_url", "STOREFRONT_ANTHROPIC_BASE_URL"),
            ("local_base_url", "STOREFRONT_LOCAL_BASE_URL"),
            ("openai_api_key", "OPENAI_API_KEY"),
            ("anthropic_api_key", "ANTHROPIC_API_KEY"),
            ("openai_model", "STOREFRONT_OPENAI_MODEL"),
            ("anthropic_model", "STOREFRONT_ANTHROPIC_MODEL"),
            ("local_model", "STOREFRONT_LOCAL_MODEL"),
        ):
            if value := env.get(var, "").strip():
                fields[name] = value
        if raw := env.get("STOREFRONT_AI_TIMEOUT", "").strip():
            try:
                fields["ai_timeout"] = float(raw)
            except ValueError:
                raise ValueError(f"STOREFRONT_AI_TIMEOUT: must be a number of seconds, got {raw!r}") from None
            if not fields["ai_timeout"] > 0:
                raise ValueError(f"STOREFRONT_AI_TIMEOUT: must be positive, got {raw!r}")
        return cls(**fields)


# -- outbound AI calls ---------------------------------------------------------------------

class AIError(Exception):
    """One AI call failed; the message is one line, starting with the backend."""


class BadInput(ValueError):
    pass


def _one_line(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _provider_message(body: bytes) -> str:
    """The error message from an OpenAI- or Anthropic-style error body, else the start of the body."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _one_line(body.decode("utf-8", "replace"), 120)
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return _one_line(err["message"], 160)
        if isinstance(err, str):
            return _one_line(err, 160)
    return _one_line(json.dumps(data), 120)


def _describe(backend: str, exc: BaseException, timeout: float) -> str:
    if isinstance(exc, AIError):
        return str(exc)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"{backend}: timed out after {timeout:g}s ({type(exc).__name__})"
    detail = str(exc) or "no detail"
    if isinstance(exc, httpx.ConnectError):
        return _one_line(f"{backend}: cannot connect: {detail}")
    if isinstance(exc, httpx.ReadError | httpx.WriteError) and not str(exc):
        detail = "connection reset or closed"
    return _one_line(f"{backend}: {type(exc).__name__}: {detail}")


class AI:
    """The product's AI calls, over one shared client."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.timeout = httpx.Timeout(settings.ai_timeout)

    async def _guarded(self, backend: str, call: Awaitable[str]) -> str:
        """Run one AI call under the product's total timeout; any failure becomes an `AIError`."""
        try:
            async with asyncio.timeout(self.settings.ai_timeout):
                text = await call
        except Exception as exc:  # any failure of the call (not a cancellation) is a failed AI call
            raise AIError(_describe(backend, exc, self.settings.ai_timeout)) from exc
        if not text.strip():
            raise AIError(f"{backend}: no answer text")
        return text.strip()

    def _openai_headers(self, key: str | None, feature: str) -> dict[str, str]:
        headers = {FEATURE_HEADER: feature, "accept": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def _chat_completions(self, backend: str, base: str, key: str | None, model: str, feature: str,
                                messages: list[dict[str, str]], max_tokens: int) -> str:
        body = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": False}
        resp = await self.client.post(f"{base}/chat/completions", json=body,
                                      headers=self._openai_headers(key, feature), timeout=self.timeout)
        if not resp.is_success:
            raise AIError(f"{backend}: HTTP {resp.status_code}: {_provider_message(resp.content)}")
        content = resp.json()["choices"][0]["message"].get("content")
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content or ""

    async def openai(self, feature: str, messages: list[dict[str, str]], max_tokens: int = 200) -> str:
        s = self.settings
        return await self._guarded("openai", self._chat_completions(
            "openai", s.openai_base_url, s.openai_api_key, s.openai_model, feature, messages, max_tokens))

    async def local(self, feature: str, messages: list[dict[str, str]], max_tokens: int = 200) -> str:
        s = self.settings
        return await self._guarded("local", self._chat_completions(
            "local", s.local_base_url, None, s.local_model, feature, messages, max_tokens))

    async def anthropic(self, feature: str, system: str, message: str, max_tokens: int = 300) -> str:
        return await self._guarded("anthropic", self._anthropic_stream(feature, system, message, max_tokens))

    async def _anthropic_stream(self, feature: str, system: str, message: str, max_tokens: int) -> str:
        s = self.settings
        headers = {FEATURE_HEADER: feature, "anthropic-version": ANTHROPIC_VERSION, "accept": "text/event-stream"}
        if s.anthropic_api_key:
            headers["x-api-key"] = s.anthropic_api_key
        body = {"model": s.anthropic_model, "max_tokens": max_tokens, "stream": True, "system": system,
                "messages": [{"role": "user", "content": message}]}
        parts: list[str] = []
        async with self.client.stream("POST", f"{s.anthropic_base_url}/v1/messages", json=body, headers=headers,
                                      timeout=self.timeout) as resp:
            if not resp.is_success:
                raise AIError(f"anthropic: HTTP {resp.status_code}: {_provider_message(await resp.aread())}")
            event: str | None = None
            data: list[str] = []
            async for line in resp.aiter_lines():
                if line.startswith(":"):
                    continue
                if line:
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    continue
                if not data:  # a blank line ends an event; one without data is nothing
                    event = None
                    continue
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    raise AIError(f"anthropic: malformed stream event {event or 'message'!r}") from None
                kind = event or (payload.get("type") if isinstance(payload, dict) else None)
                event, data = None, []
                if kind == "error":
                    detail = _provider_message(json.dumps(payload).encode())
                    raise AIError(f"anthropic: error event in stream: {detail}")
                if kind == "message_stop":
                    return "".join(parts)
                if kind == "content_block_delta":
                    delta = payload.get("delta") or {}
                    if delta.get("type") == "text_delta":
                        parts.append(delta.get("text") or "")
        raise AIError(f"anthropic: stream ended without message_stop after {len(parts)} text deltas")


# -- the features --------------------------------------------------------------------------

class Failed(Exception):
    """The feature cannot answer: a 503 carrying ``error``."""


def _tags_from(text: str) -> list[str]:
    tags: list[str] = []
    for raw in re.split(r"[,\n;]", text):
        tag = raw.strip().strip("#*-•.\"'` ").lower()
        tag = re.sub(r"^(tags?:\s*|\d+[.)]\s*)", "", tag).strip()
        if tag and len(tag) <= 40 and tag not in tags:
            tags.append(tag)
    return tags[:5]


def heuristic_tags(review: str) -> list[str]:
    """Tags from keywords, in `KEYWORD_TAGS` order; ``["general"]`` when none is found."""
    lowered = review.lower()
    tags: list[str] = []
    for keyword, tag in KEYWORD_TAGS.items():
        if tag not in tags and re.search(r"\b" + re.escape(keyword), lowered):
            tags.append(tag)
    return tags or ["general"]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def rank_items(answer: str, query: str, items: list[str]) -> list[str]:
    """Items the model named (by number or by name), in the order it named them, then the rest by word overlap."""
    lowered = answer.lower()
    found: list[tuple[int, int]] = []  # (position in the answer, item index)
    for match in re.finditer(r"\b(\d{1,3})\b", answer):
        index = int(match.group(1)) - 1
        if 0 <= index < len(items):
            found.append((match.start(), index))
    for index, item in enumerate(items):
        pos = lowered.find(item.lower())
        if pos >= 0:
            found.append((pos, index))
    picked: list[int] = []
    for _, index in sorted(found):
        if index not in picked:
            picked.append(index)
    q = _words(query)
    rest = sorted((i for i in range(len(items)) if i not in picked), key=lambda i: -len(q & _words(items[i])))
    return [items[i] for i in picked + rest]


def _string(body: Any, key: str) -> str:
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{key}: a non-empty string is required")
    if len(value) > MAX_INPUT_CHARS:
        raise BadInput(f"{key}: at most {MAX_INPUT_CHARS} characters")
    return value.strip()


async def description(ai: AI, body: Any) -> dict[str, Any]:
    product = _string(body, "product")
    messages = [
        {"role": "system", "content": "You write short, upbeat product descriptions for an online shop."},
        {"role": "user", "content": f"Write a two-sentence description for this product: {product}"},
    ]
    try:
        text = await ai.openai("description", messages)
    except AIError as exc:
        raise Failed(str(exc)) from exc
    return {"text": text, "backend": "openai", "degraded": False, "primary_error": None}


async def chat(ai: AI, body: Any) -> dict[str, Any]:
    message = _string(body, "message")
    system = "You are the shop's friendly support assistant. Answer in at most three sentences."
    try:
        text = await ai.anthropic("chat", system, message)
        return {"text": text, "backend": "anthropic", "degraded": False, "primary_error": None}
    except AIError as exc:
        primary_error = str(exc)
    log.warning("chat: %s; falling back to the local model", primary_error)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": message}]
    try:
        # A short answer: a small local model on shared cores takes seconds per hundred tokens.
        text = await ai.local("chat", messages, max_tokens=64)
    except AIError as exc:
        raise Failed(f"{primary_error}; fallback {exc}") from exc
    return {"text": text, "backend": "local", "degraded": False, "primary_error": primary_error}


async def tags(ai: AI, body: Any) -> dict[str, Any]:
    review = _string(body, "review")
    messages = [
        {"role": "system", "content": "You tag product reviews for an online shop."},
        {"role": "user", "content": "Give up to five short lowercase tags for this review, comma-separated, "
                                    f"nothing else.\n\nReview: {review}"},
    ]
    try:
        text = await ai.openai("tags", messages, max_tokens=40)
        found = _tags_from(text)
        if not found:
            raise AIError("openai: no tags in the answer")
        return {"text": text, "backend": "openai", "degraded": False, "primary_error": None, "tags": found}
    except AIError as exc:
        primary_error = str(exc)
    log.warning("tags: %s; using the keyword heuristic", primary_error)
    found = heuristic_tags(review)
    return {"text": ", ".join(found), "backend": "heuristic", "degraded": True, "primary_error": primary_error,
            "tags": found}


async def search(ai: AI, body: Any) -> dict[str, Any]:
    query = _string(body, "query")
    items = body.get("items") if isinstance(body, dict) else None
    if items is None:
        items = list(CATALOGUE)
    if (not isinstance(items, list) or not items or len(items) > MAX_ITEMS
            or not all(isinstance(i, str) and i.strip() and len(i) <= 200 for i in items)):
        raise BadInput(f"items: 1 to {MAX_ITEMS} non-empty strings of at most 200 characters")
    numbered = "\n".join(f"{n}. {item}" for n, item in enumerate(items, 1))
    messages = [
        {"role": "system", "content": "You rank shop items for a search query."},
        {"role": "user", "content": f"Search query: {query}\n\nItems:\n{numbered}\n\n"
                                    "Reply with the number of the item that best matches the query."},
    ]
    try:
        text = await ai.local("search", messages, max_tokens=16)
    except AIError as exc:
        raise Failed(str(exc)) from exc
    return {"text": text, "backend": "local", "degraded": False, "primary_error": None,
            "ranked": rank_items(text, query, items)}


# -- the web app ---------------------------------------------------------------------------

Handler = Callable[[AI, Any], Awaitable[dict[str, Any]]]


def _endpoint(feature: str, handler: Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"feature": feature, "error": "request body: not JSON", "backend": None}, 400)
        started = time.perf_counter()
        try:
            result = await handler(request.app.state.ai, body)
        except BadInput as exc:
            return JSONResponse({"feature": feature, "error": str(exc), "backend": None}, 400)
        except Failed as exc:
            latency = round((time.perf_counter() - started) * 1000, 1)
            log.warning("%s: 503: %s", feature, exc)
            return JSONResponse({"feature": feature, "error": _one_line(str(exc), 600), "backend": None,
                                 "latency_ms": latency}, 503)
        except Exception as exc:  # never a 500 traceback: a bug is still a one-line 503
            latency = round((time.perf_counter() - started) * 1000, 1)
            log.exception("%s: unexpected error", feature)
            return JSONResponse({"feature": feature, "error": _one_line(f"internal: {type(exc).__name__}: {exc}"),
                                 "backend": None, "latency_ms": latency}, 503)
        latency = round((time.perf_counter() - started) * 1000, 1)
        return JSONResponse({"feature": feature, **result, "latency_ms": latency})

    return endpoint


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def features(request: Request) -> JSONResponse:
    s: Settings = request.app.state.settings
    bases = {"openai": s.openai_base_url, "anthropic": s.anthropic_base_url, "local": s.local_base_url}
    return JSONResponse({name: {**spec, "primary_base_url": bases[spec["primary"]]}
                         for name, spec in FEATURES.items()})


def create_app(settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The app; one outbound client lives from startup to shutdown (``transport`` replaces its network in tests)."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(settings.ai_timeout),
                                     transport=transport) as client:
            app.state.ai = AI(settings, client)
            yield

    routes = [
        Route("/healthz", healthz),
        Route("/api/features", features),
        Route("/api/description", _endpoint("description", description), methods=["POST"]),
        Route("/api/chat", _endpoint("chat", chat), methods=["POST"]),
        Route("/api/tags", _endpoint("tags", tags), methods=["POST"]),
        Route("/api/search", _endpoint("search", search), methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    return app
