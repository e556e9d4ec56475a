"""What a feature asks a model (`Conversation`), and what came back (`Generation`).

A conversation is provider-neutral: a system prompt, the turns, and the sampling parameters the
feature sends. Each dialect writes it in its provider's own format (`Dialect.build_request` with
``conversation=``), and `probes.generate` sends it with the probe's timing and error handling.
It is validated when made, so a dialect never has to ask whether it makes sense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from probes.result import ProbeResult

ROLES = ("user", "assistant")


@dataclass(frozen=True, slots=True)
class Conversation:
    """The turns and parameters of one generation request; ``ValueError`` names what is wrong.

    ``messages`` are ``(role, content)`` pairs, ``role`` "user" or "assistant", the last the user's.
    ``None`` for a parameter means the provider's default (``max_tokens``: the target's).
    """

    messages: tuple[tuple[str, str], ...]
    system: str | None = None
    max_tokens: int | None = None  # None: the target's max_tokens
    temperature: float | None = None  # 0 to 2
    top_p: float | None = None  # above 0, at most 1
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Lists are accepted and kept as tuples, so a conversation is hashable and cannot change.
        messages = tuple(tuple(m) if isinstance(m, list | tuple) else m for m in self.messages) \
            if isinstance(self.messages, list | tuple) else self.messages
        object.__setattr__(self, "messages", messages)
        if self.stop is None or isinstance(self.stop, list):
            object.__setattr__(self, "stop", tuple(self.stop or ()))
        _validate(self)

    @property
    def prompt(self) -> str:
        """The last user message: what the conversation asks now."""
        return self.messages[-1][1]

    def max_tokens_for(self, target: Any) -> int:
        """The answer's token budget: the conversation's, else the target's."""
        return self.max_tokens if self.max_tokens is not None else target.max_tokens

    def as_text(self) -> str:
        """The conversation as one prompt, for a completions endpoint (a base model has no chat template).

        One user message is sent as it is (after the system prompt); a longer conversation as a
        ``User:``/``Assistant:`` transcript ending in ``Assistant:``, the answer's cue.
        """
        head = f"{self.system}\n\n" if self.system else ""
        if len(self.messages) == 1:
            return head + self.prompt
        turns = "\n\n".join(f"{role.capitalize()}: {content}" for role, content in self.messages)
        return f"{head}{turns}\n\nAssistant:"

    @classmethod
    def from_case(cls, case: Any) -> Conversation:
        """The conversation of an eval case (`monitor.quality.cases.Case`, read by duck typing).

        ``case.messages`` are objects with ``.role`` and ``.content``; a "system" message among them
        is folded into ``system`` (after ``case.system``, in order), as the providers without a
        system role would need anyway. ``case.params`` gives max_tokens, temperature, top_p, stop.
        """
        systems = [case.system] if getattr(case, "system", None) else []
        turns: list[tuple[str, str]] = []
        for message in getattr(case, "messages", None) or ():
            if message.role == "system":
                systems.append(message.content)
            else:
                turns.append((message.role, message.content))
        params = getattr(case, "params", None)
        return cls(
            messages=tuple(turns),
            system="\n\n".join(systems) or None,
            max_tokens=getattr(params, "max_tokens", None),
            temperature=getattr(params, "temperature", None),
            top_p=getattr(params, "top_p", None),
            stop=tuple(getattr(params, "stop", None) or ()),
        )


def _validate(c: Conversation) -> None:
    if not isinstance(c.messages, tuple) or not c.messages:
        raise ValueError("messages: at least one message is needed")
    for i, message in enumerate(c.messages):
        if not (isinstance(message, tuple) and len(message) == 2):
            raise ValueError(f"messages[{i}]: must be a (role, content) pair")
        role, content = message
        if role not in ROLES:
            raise ValueError(f"messages[{i}]: role must be 'user' or 'assistant', got {str(role)[:40]!r}")
        if not isinstance(content, str) or not content:
            raise ValueError(f"messages[{i}]: content must be non-empty text")
    if c.messages[-1][0] != "user":
        raise ValueError("messages: the last message must be the user's")
    if c.system is not None and (not isinstance(c.system, str) or not c.system):
        raise ValueError("system: must be non-empty text, or None")
    if c.max_tokens is not None and (type(c.max_tokens) is not int or c.max_tokens < 1):
        raise ValueError(f"max_tokens: must be a whole number of at least 1, got {c.max_tokens!r}")
    if c.temperature is not None and not (_number(c.temperature) and 0 <= c.temperature <= 2):
        raise ValueError(f"temperature: must be a finite number from 0 to 2, got {c.temperature!r}")
    if c.top_p is not None and not (_number(c.top_p) and 0 < c.top_p <= 1):
        raise ValueError(f"top_p: must be a number above 0 and at most 1, got {c.top_p!r}")
    if not isinstance(c.stop, tuple) or not all(isinstance(s, str) and s for s in c.stop):
        raise ValueError("stop: must be a tuple of non-empty strings")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class Generation:
    """What `probes.generate` got: the call measured as a probe's, and the whole answer text.

    ``result`` has no canary (``canary_pass`` is None, never WRONG_ANSWER); its ``answer`` keeps
    200 characters as a probe's does. ``text`` keeps the whole answer, up to
    `probes.runner.ANSWER_LIMIT` characters, also when the call failed part way (what came).
    """

    result: ProbeResult
    text: str

    @property
    def ok(self) -> bool:
        return self.result.ok
