"""``contains``: the answer holds a text (or each of several, or any one of them), or, negated, none."""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import MinLen

from monitor.quality.checks._text import quote
from monitor.quality.checks.base import Check, Context, Verdict, register


@register
class Contains(Check):
    name = "contains"
    type: Literal["contains"] = "contains"
    value: Annotated[str, MinLen(1)] | Annotated[list[Annotated[str, MinLen(1)]], MinLen(1)]
    """A text, or a list of texts."""
    mode: Literal["all", "any"] = "all"
    """With a list: every text must appear (``all``), or one is enough (``any``)."""
    case_sensitive: bool = False
    negate: bool = False
    """Pass when none of the texts appears (``mode`` is then moot): "never mentions a competitor"."""

    def run(self, answer: str, ctx: Context) -> Verdict:
        wanted = [self.value] if isinstance(self.value, str) else list(self.value)
        hay = answer if self.case_sensitive else answer.casefold()
        found = [w for w in wanted if (w if self.case_sensitive else w.casefold()) in hay]
        missing = [w for w in wanted if w not in found]
        if self.negate:
            if not found:
                return Verdict.ok(f"none of {_list(wanted)}")
            return Verdict.fail(f"contains {_list(found)}", len(missing) / len(wanted))
        score = len(found) / len(wanted)
        if (self.mode == "all" and not missing) or (self.mode == "any" and found):
            return Verdict.ok(f"contains {_list(found)}", score)
        return Verdict.fail(f"missing {_list(missing)}", score)


def _list(texts: list[str]) -> str:
    shown = ", ".join(quote(t, 40) for t in texts[:5])
    return shown + (f" (and {len(texts) - 5} more)" if len(texts) > 5 else "")
