"""Read the parts of a generation request that fault injection acts on (`Ask`).

One reader per wire protocol, the speaker's ``ask_of`` (`chaos.speakers`), so the emulator, the
fault proxy and the httpx transport agree on which model was asked for, whether the answer
streams, and what the prompt was. Strict (`read_ask`, raising `BadRequest` with the provider's
own wording) for the emulator, which must refuse a request the real API refuses; lenient
(`sniff_ask`) for the proxy and the transport, which only look and always pass the request on.
What each API refuses, and which turn is the prompt: `chaos.speakers.reading` and each speaker's
``ask_of``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from chaos.speakers import SPEAKERS
from chaos.speakers.base import Ask
from chaos.speakers.reading import BadRequest

READERS: dict[str, Callable[[dict[str, Any], str, Mapping[str, str]], Ask]] = {
    name: speaker.ask_of for name, speaker in SPEAKERS.items()
}

__all__ = ["READERS", "BadRequest", "read_ask", "sniff_ask"]


def read_ask(dialect: str, path: str, body: bytes | dict, query: Mapping[str, str] | None = None) -> Ask:
    """The request as the provider reads it; `BadRequest` says what the provider would refuse."""
    if isinstance(body, bytes | str):
        try:
            if isinstance(body, bytes) and body[:1] == b"{" and body[1:2] != b"\x00":
                # What json.loads(bytes) does for a body its encoding detection reads as UTF-8 (no
                # BOM, no NUL in the first bytes; json.detect_encoding), without the detection:
                # the proxy reads every body on its hot path.
                body = json.loads(body.decode("utf-8", "surrogatepass"))
            else:
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
