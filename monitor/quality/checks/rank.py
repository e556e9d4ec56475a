"""``rank``: an expected item comes within the first ``top`` of a ranked list.

The list is the product's own ranking when its JSON answer has one (``ranked``, in end-to-end runs),
else the answer read as a list: a JSON array, numbered or bulleted lines, or comma-separated. An
answer item that is a bare number ("2") names the item so numbered in the case's prompt ("2. Trail
shoes"), as a model asked to pick by number answers. An item matches when either text holds the other
(case-folded).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from annotated_types import Interval, MinLen
from pydantic import field_validator

from monitor.quality.checks._text import MAX_ITEMS, item_text, quote, split_items
from monitor.quality.checks.base import Check, Context, Verdict, register

_NUMBERED = re.compile(r"^\s*(\d{1,3})[.)]\s+(.+?)\s*$", re.MULTILINE)
_BARE_NUMBER = re.compile(r"(?:#|no\.?\s*|item\s*)?(\d{1,3})[.)]?", re.IGNORECASE)


def ranked_items(answer: str, ctx: Context) -> tuple[list[str], str]:
    """The ranked list and where it came from ("the product's ranking" or "the answer")."""
    ranked = ctx.extra.get("ranked") if isinstance(ctx.extra, dict) else None
    if isinstance(ranked, list):
        return [s for s in (item_text(v).strip() for v in ranked[:MAX_ITEMS]) if s], "the product's ranking"
    items = split_items(answer)
    prompt = ctx.case.prompt if ctx.case is not None else ""
    numbered = {int(n): text for n, text in _NUMBERED.findall(prompt[:200_000])}
    if numbered:
        resolved = []
        for item in items:
            bare = _BARE_NUMBER.fullmatch(item.strip())
            resolved.append(numbered.get(int(bare.group(1)), item) if bare else item)
        items = resolved
    return items, "the answer"


@register
class Rank(Check):
    name = "rank"
    type: Literal["rank"] = "rank"
    expected: Annotated[str, MinLen(1)]
    """The item that should rank high (matched case-folded, either text within the other)."""
    top: Annotated[int, Interval(ge=1)] = 3

    @field_validator("expected")
    @classmethod
    def _not_blank(cls, expected: str) -> str:
        if not expected.strip():
            raise ValueError("must hold some text")
        return expected

    def run(self, answer: str, ctx: Context) -> Verdict:
        items, source = ranked_items(answer, ctx)
        want = self.expected.strip().casefold()
        keys = (item.casefold().strip(" .,;:!?\"'") for item in items)
        position = next((i for i, key in enumerate(keys, 1) if key and (want in key or key in want)), None)
        if position is None:
            return Verdict.fail(f"{quote(self.expected)} not among the {len(items)} items of {source}")
        found = f"{quote(self.expected)} is {_ordinal(position)} of {len(items)} in {source}"
        if position <= self.top:
            return Verdict.ok(f"{found}, within the top {self.top}", 1 / position)
        return Verdict.fail(f"{found}, not within the top {self.top}", 1 / position)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
