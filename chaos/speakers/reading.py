"""Reading a generation request into an `Ask`: what every speaker's ``ask_of`` shares.

The prompt is what the emulator answers: the last user message of the conversation (a system
prompt, earlier turns and an assistant prefill after it are accepted and passed over, as the real
APIs accept them). A reader refuses (`BadRequest`, in the provider's own wording) what the real
API refuses; each speaker's ``ask_of`` cites its API's rules. Every reader refuses a ``messages``
(``contents``) that is not a non-empty array.
"""

from __future__ import annotations

from typing import Any


class BadRequest(ValueError):
    """A request the provider would refuse with a 400; the message is the provider's own wording."""


def text(content: Any) -> str:
    """A message's text: a string, or the ``text`` of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def last_user(messages: Any, roles: tuple[str, ...] | None = None, field: str = "messages",
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
    return text(prompt)


def _bad_role(field: str, index: int, role: Any, roles: tuple[str, ...]) -> str:
    if field == "contents":  # Gemini's own words
        return "Please use a valid role: user, model."
    supported = ", ".join(repr(r) for r in roles)
    return f"Invalid value: {str(role)[:40]!r}. Supported values are: {supported}. ({field}[{index}].role)"
