"""``regex``: the answer matches a regular expression (or, with ``must_match: false``, never does)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from annotated_types import MaxLen, MinLen
from pydantic import PrivateAttr, field_validator

from monitor.quality.checks._text import compile_pattern, quote
from monitor.quality.checks.base import Check, Context, Verdict, register

MAX_PATTERN = 1000


@register
class Regex(Check):
    """Searched anywhere in the answer (``re.search``); anchor with ``^``/``$`` for the whole.

    Patterns come from the team's own eval files and run on answers of up to 64 KiB: Python's ``re``
    has no time limit, so a pattern written to backtrack catastrophically is the file's defect."""

    name = "regex"
    type: Literal["regex"] = "regex"
    pattern: Annotated[str, MinLen(1), MaxLen(MAX_PATTERN)]
    ignore_case: bool = False
    must_match: bool = True
    """False: the answer must not match (e.g. "never promises a refund")."""
    _compiled: re.Pattern[str] = PrivateAttr()

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        compile_pattern(pattern)
        return pattern

    def model_post_init(self, context: Any) -> None:
        self._compiled = compile_pattern(self.pattern, re.IGNORECASE if self.ignore_case else 0)

    def run(self, answer: str, ctx: Context) -> Verdict:
        match = self._compiled.search(answer)
        shown = f"/{self.pattern if len(self.pattern) <= 60 else self.pattern[:59] + chr(0x2026)}/"
        if match is None:
            if self.must_match:
                return Verdict.fail(f"no match for {shown}")
            return Verdict.ok(f"no match for {shown}, as wanted")
        found = f"{quote(match.group(0))} at character {match.start()}"
        if self.must_match:
            return Verdict.ok(f"matches {shown}: {found}")
        return Verdict.fail(f"matches {shown}, which it must not: {found}")
