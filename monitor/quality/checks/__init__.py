"""The registry of checks: one module each, registering itself on import (see ``base.py``).

Add a check: write ``checks/<name>.py`` with a `Check` subclass decorated with `register`, and
import it below. `parse_check` turns a case's ``{"type": ..., ...}`` entry into that check.
"""

from __future__ import annotations

from typing import Any

# Each import registers its check.
from monitor.quality.checks import (  # noqa: F401
    contains,
    equals,
    json_schema,
    judge,
    length,
    no_refusal,
    number,
    one_of,
    rank,
    regex,
    similar,
)
from monitor.quality.checks.base import REGISTRY, Check, Context, Verdict, register

__all__ = ["REGISTRY", "Check", "Context", "UnknownCheck", "Verdict", "parse_check", "register"]


class UnknownCheck(ValueError):
    pass


def parse_check(data: Any) -> Check:
    """The check an entry of ``checks`` names; ValueError (pydantic's, or `UnknownCheck`) if it is wrong."""
    if not isinstance(data, dict):
        raise UnknownCheck(f"a check is an object with a 'type', got {type(data).__name__}")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in REGISTRY:
        raise UnknownCheck(f"unknown check type {kind!r} (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[kind].model_validate(data)
