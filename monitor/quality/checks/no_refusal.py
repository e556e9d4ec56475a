"""``no_refusal``: the answer is not a refusal ("I'm sorry, but I can't help with that").

A refusal is told by how it opens: the phrases below are searched in the first `OPENING` characters
(apostrophes normalised, case-folded), where a model that declines says so. Phrases that also open
helpful answers ("I'm sorry to hear that your order...") are not on the list: only an apology followed
by a refusal is. ``extra`` adds the team's own patterns (regular expressions, case-insensitive), searched
in the whole answer since their authors chose them for it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from annotated_types import MaxLen, MinLen
from pydantic import AfterValidator, Field, PrivateAttr

from monitor.quality.checks._text import compile_pattern, quote
from monitor.quality.checks.base import Check, Context, Verdict, register
from monitor.quality.checks.regex import MAX_PATTERN

OPENING = 300
_CANT = (r"(?:can ?not|can't|won't|will not|(?:won't|will not) be able to|am unable to|'m unable to|am not able to|"
         r"'m not able to|must not)")
_DO = (r"(?:help|assist|provide|comply|answer|fulfil|fulfill|support|share|create|generate|write|complete|"
       r"engage|discuss|give|offer|do (?:that|this)|continue|process|respond|talk about|recommend)")
REFUSALS = tuple(re.compile(p) for p in (
    rf"\bi {_CANT} {_DO}\b",                                        # I can't help with that
    # I'm sorry, but I can't (help / .)
    rf"\b(?:(?:i'm|i am) (?:so |very |really )?)?sorry,? (?:but )?i {_CANT}(?: {_DO}\b|[.!])",
    rf"\bi apologi[sz]e,? but i {_CANT}",
    rf"\b(?:unfortunately|regrettably),? i {_CANT}",
    r"\bas an ai\b",                                                 # As an AI (language model), I ...
    r"\bi(?:'m| am) (?:just |only )?an ai(?: language model| assistant| model)?,? (?:and|so) i\b",
    r"\bi (?:must|have to|need to|will have to) (?:respectfully )?(?:decline|refuse)\b",
    r"\bi(?:'m| am) not (?:allowed|permitted|authori[sz]ed) to\b",
    r"\bi(?:'m| am) not comfortable (?:helping|providing|writing|answering|doing)\b",
    r"\bthat(?:'s| is) not something i (?:can|am able to|'m able to) (?:help|assist|do)\b",
    r"\bi(?:'d| would) rather not\b",
    r"\b(?:this|that) (?:request )?(?:goes|is) against my (?:guidelines|policies|policy|programming)\b",
    r"\bi(?:'m| am) (?:unable|not able) to (?:help|assist|provide|comply|answer|fulfil|fulfill)\b",
))
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def refusal(answer: str) -> re.Match[str] | None:
    """The refusal phrase near the start of ``answer``, if there is one."""
    opening = " ".join(answer[: OPENING * 2].split())[:OPENING].translate(_APOSTROPHES).casefold()
    hits = [m for m in (p.search(opening) for p in REFUSALS) if m]
    return min(hits, key=lambda m: m.start()) if hits else None


def _compiles(pattern: str) -> str:
    compile_pattern(pattern)
    return pattern


@register
class NoRefusal(Check):
    name = "no_refusal"
    type: Literal["no_refusal"] = "no_refusal"
    extra: list[Annotated[str, MinLen(1), MaxLen(MAX_PATTERN), AfterValidator(_compiles)]] = Field(default_factory=list)
    """More refusal patterns (regular expressions, case-insensitive, searched in the whole answer)."""
    _extra: tuple[re.Pattern[str], ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any) -> None:
        self._extra = tuple(compile_pattern(p, re.IGNORECASE) for p in self.extra)

    def run(self, answer: str, ctx: Context) -> Verdict:
        match = refusal(answer)
        if match is not None:
            return Verdict.fail(f"a refusal: {quote(match.group(0))} near the start")
        for pattern in self._extra:
            found = pattern.search(answer)
            if found is not None:
                return Verdict.fail(f"a refusal: {quote(found.group(0))} at character {found.start()} "
                                    f"(extra /{pattern.pattern[:60]}/)")
        return Verdict.ok("no refusal")
