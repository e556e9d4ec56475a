"""``equals``: the whole answer is one expected text (whitespace stripped and collapsed)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator
from rapidfuzz import fuzz

from monitor.quality.checks._text import quote, squash
from monitor.quality.checks.base import Check, Context, Verdict, register


@register
class Equals(Check):
    name = "equals"
    type: Literal["equals"] = "equals"
    value: str
    """The expected answer; compared after stripping and collapsing whitespace."""
    case_sensitive: bool = False

    @field_validator("value")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must hold some text (a blank answer is not worth a check)")
        return value

    def run(self, answer: str, ctx: Context) -> Verdict:
        got, want = squash(answer), squash(self.value)
        if not self.case_sensitive:
            got, want = got.casefold(), want.casefold()
        if got == want:
            return Verdict.ok(f"equals {quote(self.value)}")
        # How close it came: the edit similarity, so a near miss ranks above nonsense.
        return Verdict.fail(f"got {quote(answer)}, not {quote(self.value)}", fuzz.ratio(got, want) / 100)
