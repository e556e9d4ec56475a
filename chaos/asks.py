"""Read the parts of a generation request that fault injection acts on (`Ask`).

One reader per wire protocol, keyed by the path the request went to, so the emulator,
the fault proxy and the httpx transport agree on which model was asked for, whether the
answer streams, and what the prompt was. Strict (`read_ask`, raising `BadRequest` with
the provider's own wording) for the emulator, which must refuse a request the real API
refuses; lenient (`sniff_ask`) for the proxy and the transport, which only look and
always pass the request on.

The prompt is what the emulator answers: the last user message of the conversation (a system
prompt, earlier turns and an assistant prefill after it are accepted and passed over, as the real
APIs accept them). What each API refuses, from its reference:
- OpenAI "Create chat completion": a message role outside system, developer, user, assistant,
  tool, function.
- Gemini ``Content.role``: "Must be either 'user' or 'model'" (or unset, for one turn).
- Anthropic "Create a Message": nothing about the turns' order or the last role (consecutive
  turns of one role are combined, a last assistant turn is a prefill; newer models also take a
  "system" turn mid-conversation), so nothing about roles is refused here.
Every reader refuses a ``messages`` (``contents``) that is not a non-empty array.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from chaos.speakers.base import Ask

_AZURE = re.compile(r"/openai/deployments/(?P<deployment>[^/]+)/(?:chat/)?completions$")
_GEMINI = re.compile(r"/models/(?P<model>[^/:]+):(?P<action>\w+)$")


class BadRequest(ValueError):
    pass


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


_OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_GEMINI_ROLES = ("user", "model")


def _last_user(messages: Any, roles: tuple[str, ...] | None = None, field: str = "messages",
               content: str = "content", user: str = "user") -> str:
    """The text of the last message whose role is ``user`` (or unset), else of the last message.

    ``roles``: the roles the API takes, a message with another one refused; None takes any."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest(f"{field}: must be a non-empty array")
    prompt = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if roles is not None and role is not None and role not in roles:
            raise BadRequest(_bad_role(field, i, role, roles))
        if role is None or role == user:
            prompt = message.get(content)
    if prompt is None:
        prompt = messages[-1].get(content) if isinstance(messages[-1], dict) else None
    return _text(prompt)


def _bad_role(field: str, index: int, role: Any, roles: tuple[str, ...]) -> str:
    if field == "contents":  # Gemini's own words
        return "Please use a valid role: user, model."
    supported = ", ".join(repr(r) for r in roles)
    return f"Invalid value: {str(role)[:40]!r}. Supported values are: {supported}. ({field}[{index}].role)"


def _openai(body: dict, path: str, query: Mapping[str, str]) -> Ask:
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
                   stream=bool(body.get("stream")), include_usage=bool(opts.get("include_usage")), completions=True)
    if "model" not in body:
        raise BadRequest("you must provide a model parameter")
    return Ask(model=body["model"], prompt=_last_user(body.get("messages"), _OPENAI_ROLES),
               max_tokens=body.get("max_tokens") or body.get("max_completion_tokens") or 64,
               stream=bool(body.get("stream")), include_usage=bool(opts.get("include_usage")))


def _anthropic(body: dict, path: str, query: Mapping[str, str]) -> Ask:
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            raise BadRequest(f"{field}: Field required")
    return Ask(model=body["model"], prompt=_last_user(body["messages"]), max_tokens=body["max_tokens"],
               stream=bool(body.get("stream")))


def _gemini(body: dict, path: str, query: Mapping[str, str]) -> Ask:
    match = _GEMINI.search(path)
    if match is None or match["action"] not in ("generateContent", "streamGenerateContent"):
        raise BadRequest(f"unknown method {match['action'] if match else path}")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("contents is not specified")
    config = body.get("generationConfig") or {}
    prompt = _last_user(contents, _GEMINI_ROLES, field="contents", content="parts")
    return Ask(model=match["model"], prompt=prompt, max_tokens=config.get("maxOutputTokens") or 64,
               stream=match["action"] == "streamGenerateContent")


def _cohere(body: dict, path: str, query: Mapping[str, str]) -> Ask:
    return Ask(model=body.get("model", ""), prompt=_last_user(body.get("messages")),
               max_tokens=body.get("max_tokens") or 64, stream=bool(body.get("stream")))


def _ollama(body: dict, path: str, query: Mapping[str, str]) -> Ask:
    generate = path.endswith("/generate")
    prompt = body.get("prompt", "") if generate else _last_user(body.get("messages"))
    options = body.get("options") or {}
    return Ask(model=body.get("model", ""), prompt=prompt, max_tokens=options.get("num_predict") or 64,
               stream=body.get("stream", True) is not False, completions=generate)


READERS = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini, "cohere": _cohere, "ollama": _ollama}


def read_ask(dialect: str, path: str, body: bytes | dict, query: Mapping[str, str] | None = None) -> Ask:
    """The request as the provider reads it; `BadRequest` says what the provider would refuse."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return READERS[dialect](body, path, query or {})


def sniff_ask(dialect: str, path: str, body: bytes, query: Mapping[str, str] | None = None) -> Ask | None:
    """The request as far as it can be read, or None (not a generation request, or not readable).

    Total: a request body is the client's, and whatever it holds (deep nesting, a model that is an
    object, a max_tokens that is a string) the proxy and the transport pass the request on. The Ask
    keeps only well-typed values, as the fault plan and the speakers expect them."""
    if not body or body[:1] not in (b"{", b" ", b"\n", b"\t", b"\r"):
        return None
    try:
        ask = read_ask(dialect, path, body, query)
    except (BadRequest, AttributeError, TypeError, KeyError, ValueError, RecursionError):
        return None
    model = ask.model if isinstance(ask.model, str) else ""
    max_tokens = ask.max_tokens if type(ask.max_tokens) is int and ask.max_tokens > 0 else 64
    prompt = ask.prompt if isinstance(ask.prompt, str) else ""
    if (model, max_tokens, prompt) != (ask.model, ask.max_tokens, ask.prompt):
        ask = replace(ask, model=model, max_tokens=max_tokens, prompt=prompt)
    return ask
