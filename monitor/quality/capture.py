"""Captured traffic as eval cases (``airisk eval export``): a stored capture (`CapturedCaseRow`: the request
body a feature sent through the proxy, redacted, and the answer it got) becomes one case of the JSONL
format `monitor.quality.cases` reads.

The request is read in its provider's own format (the dialect, from the path it went to, else the
route's catalog entry): the system prompt, the user and assistant turns, and the parameters the case
format has (max_tokens, temperature, top_p, stop). The answer becomes the case's ``reference``, checked
with `DEFAULT_CHECKS`. A request a case cannot hold (tool calls, images, no user turn last, no answer)
is skipped with a reason, never half-converted.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from probes.catalog import CATALOG

DEFAULT_CHECKS: tuple[dict[str, Any], ...] = ({"type": "similar", "threshold": 0.5}, {"type": "no_refusal"})
MAX_STOP = 4  # what the case format takes
MAX_TOKENS = 32_768


class NotACase(ValueError):
    """Why a capture cannot be a case (the reason is counted, never shown with the capture's text)."""


def dialect_of(route: str, path: str) -> str | None:
    """The wire protocol a captured request spoke: from its path, else from the route's catalog entry."""
    if path.endswith("/messages"):
        return "anthropic"
    if re.search(r":(?:stream)?[gG]enerateContent$", path):
        return "gemini"
    if path.endswith(("/api/chat", "/api/generate")):
        return "ollama"
    if path.endswith("/completions"):
        return "openai"
    if path.endswith("/chat"):
        return "cohere"
    provider = CATALOG.get(route)
    return provider.dialect if provider is not None else None


def _text(content: Any, *, text_key: str = "text") -> str:
    """The text of a message's content: a string, or a list of text parts; NotACase for anything else
    (an image, a tool call or result), which a text case cannot hold."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get(text_key), str) and \
                    part.get("type", "text") in ("text", "input_text"):
                texts.append(part[text_key])
            else:
                raise NotACase("non-text content (image, tool call or result)")
        return "".join(texts)
    if content is None:
        return ""
    raise NotACase("message content is neither text nor a list of parts")


class _Reading:
    def __init__(self) -> None:
        self.system: list[str] = []
        self.turns: list[tuple[str, str]] = []
        self.params: dict[str, Any] = {}

    def turn(self, role: Any, content: Any, **text_opts: Any) -> None:
        role = role.lower() if isinstance(role, str) else role
        text = _text(content, **text_opts)
        if role in ("system", "developer"):
            if text:
                self.system.append(text)
        elif role in ("user", "assistant"):
            if text:
                self.turns.append((role, text))
        else:
            raise NotACase(f"a {str(role)[:20]!r} turn (tool use) is not a case's")

    def param(self, name: str, value: Any) -> None:
        if value is None or isinstance(value, bool):
            return
        if name == "max_tokens":
            if isinstance(value, int) and value >= 1:
                self.params[name] = min(value, MAX_TOKENS)
        elif name in ("temperature", "top_p"):
            if isinstance(value, int | float) and math.isfinite(value):
                low_ok = value > 0 if name == "top_p" else value >= 0
                if low_ok and value <= (1 if name == "top_p" else 2):
                    self.params[name] = value
        elif name == "stop":
            stops = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            stops = [s for s in stops if isinstance(s, str) and s][:MAX_STOP]
            if stops:
                self.params[name] = stops


def _messages(body: dict, reading: _Reading, field: str = "messages") -> None:
    messages = body.get(field)
    if not isinstance(messages, list):
        raise NotACase(f"no {field!r} list")
    for message in messages:
        if not isinstance(message, dict):
            raise NotACase("a message is not an object")
        if message.get("tool_calls") or message.get("function_call"):
            raise NotACase("a tool call in the conversation")
        reading.turn(message.get("role"), message.get("content"))


def _openai(body: dict, path: str, reading: _Reading) -> None:
    if "messages" not in body and isinstance(body.get("prompt"), str):  # the completions endpoint
        reading.turn("user", body["prompt"])
    else:
        _messages(body, reading)
    reading.param("max_tokens", body.get("max_completion_tokens", body.get("max_tokens")))
    for name in ("temperature", "top_p", "stop"):
        reading.param(name, body.get(name))


def _anthropic(body: dict, path: str, reading: _Reading) -> None:
    system = body.get("system")
    if system is not None:
        reading.turn("system", system)
    _messages(body, reading)
    for name, field in (("max_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"),
                        ("stop", "stop_sequences")):
        reading.param(name, body.get(field))


def _gemini(body: dict, path: str, reading: _Reading) -> None:
    system = body.get("systemInstruction", body.get("system_instruction"))
    if isinstance(system, dict):
        reading.turn("system", system.get("parts"))
    elif isinstance(system, str):
        reading.turn("system", system)
    contents = body.get("contents")
    if not isinstance(contents, list):
        raise NotACase("no 'contents' list")
    for content in contents:
        if not isinstance(content, dict):
            raise NotACase("a content is not an object")
        role = content.get("role", "user")
        reading.turn("assistant" if role == "model" else role, content.get("parts"))
    config = body.get("generationConfig", body.get("generation_config"))
    if isinstance(config, dict):
        for name, fields in (("max_tokens", ("maxOutputTokens", "max_output_tokens")),
                             ("temperature", ("temperature",)), ("top_p", ("topP", "top_p")),
                             ("stop", ("stopSequences", "stop_sequences"))):
            reading.param(name, next((config[f] for f in fields if f in config), None))


def _cohere(body: dict, path: str, reading: _Reading) -> None:
    if "messages" in body:  # Chat v2
        _messages(body, reading)
    else:  # Chat v1: preamble, chat_history, message
        if isinstance(body.get("preamble"), str):
            reading.turn("system", body["preamble"])
        history = body.get("chat_history") or []
        if not isinstance(history, list):
            raise NotACase("chat_history is not a list")
        roles = {"USER": "user", "CHATBOT": "assistant", "SYSTEM": "system"}
        for turn in history:
            if not isinstance(turn, dict):
                raise NotACase("a chat_history turn is not an object")
            reading.turn(roles.get(str(turn.get("role")).upper(), turn.get("role")), turn.get("message"))
        reading.turn("user", body.get("message"))
    for name, field in (("max_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "p"),
                        ("stop", "stop_sequences")):
        reading.param(name, body.get(field))


def _ollama(body: dict, path: str, reading: _Reading) -> None:
    if path.endswith("/generate"):
        if isinstance(body.get("system"), str):
            reading.turn("system", body["system"])
        reading.turn("user", body.get("prompt"))
    else:
        _messages(body, reading)
    options = body.get("options")
    if isinstance(options, dict):
        for name, field in (("max_tokens", "num_predict"), ("temperature", "temperature"), ("top_p", "top_p"),
                            ("stop", "stop")):
            reading.param(name, options.get(field))


_READERS = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini, "cohere": _cohere, "ollama": _ollama}


def case_of(row: Any) -> dict[str, Any]:
    """The eval case of one stored capture (a `CapturedCaseRow`, read by attribute); NotACase says why not."""
    if not row.answer or not row.answer.strip():
        raise NotACase("no answer to use as the reference")
    if not isinstance(row.request, dict):
        raise NotACase("the request body is not a JSON object")
    dialect = dialect_of(row.route or "", row.path or "")
    if dialect is None:
        raise NotACase("unknown wire format (neither the path nor the route name it)")
    reading = _Reading()
    try:
        _READERS[dialect](row.request, row.path or "", reading)
    except (AttributeError, TypeError, KeyError, RecursionError) as exc:  # a body of the wrong shape
        raise NotACase(f"a {dialect} request of an unexpected shape ({type(exc).__name__})") from None
    if not reading.turns or reading.turns[-1][0] != "user":
        raise NotACase("the conversation does not end with the user's turn")
    case: dict[str, Any] = {"id": f"captured-{row.id}"}
    if reading.system:
        case["system"] = "\n\n".join(reading.system)
    case["messages"] = [{"role": role, "content": text} for role, text in reading.turns]
    if reading.params:
        case["params"] = reading.params
    case["checks"] = [dict(check) for check in DEFAULT_CHECKS]
    case["reference"] = row.answer
    case["tags"] = ["captured", f"route:{row.route}"] if row.route else ["captured"]
    return case


def cases_of(rows: Iterable[Any]) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The cases of the rows that make one, and how many were skipped for each reason."""
    cases: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for row in rows:
        try:
            cases.append(case_of(row))
        except NotACase as exc:
            skipped[str(exc)] += 1
    return cases, skipped
