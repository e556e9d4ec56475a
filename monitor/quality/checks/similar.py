"""``similar``: the answer is close enough to the case's reference answer (rapidfuzz, case-folded).

Bounded: each text is compared up to `MAX_CHARS` characters, and with ``partial_ratio`` (whose cost grows
with the product of the lengths, ~0.2 s for 1,000 against 2,000 characters) the shorter one up to
`MAX_PARTIAL` characters; a reason says when a text was cut.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from annotated_types import Interval
from pydantic import Field
from rapidfuzz import fuzz

from monitor.quality.checks.base import Check, Context, Verdict, register

MAX_CHARS = 16_384
MAX_PARTIAL = 500
METHODS = {
    "ratio": fuzz.ratio,  # edit similarity of the whole texts
    "token_sort_ratio": fuzz.token_sort_ratio,  # the same words in any order
    "token_set_ratio": fuzz.token_set_ratio,  # one's words mostly within the other's
    "partial_ratio": fuzz.partial_ratio,  # the shorter text found within the longer
}


@register
class Similar(Check):
    name = "similar"
    needs_reference: ClassVar[bool] = True
    type: Literal["similar"] = "similar"
    threshold: Annotated[float, Interval(ge=0, le=1), Field(allow_inf_nan=False)] = 0.6
    """The least similarity (0..1) that passes."""
    method: Literal["ratio", "token_sort_ratio", "token_set_ratio", "partial_ratio"] = "token_set_ratio"

    def run(self, answer: str, ctx: Context) -> Verdict:
        if not ctx.reference:
            return Verdict.unjudged("similar: the case has no reference answer (airisk eval reference)")
        answer, reference = answer.casefold(), ctx.reference.casefold()
        cut = max(len(answer), len(reference)) > MAX_CHARS
        answer, reference = answer[:MAX_CHARS], reference[:MAX_CHARS]
        if self.method == "partial_ratio" and min(len(answer), len(reference)) > MAX_PARTIAL:
            cut = True
            if len(answer) <= len(reference):
                answer = answer[:MAX_PARTIAL]
            else:
                reference = reference[:MAX_PARTIAL]
        score = min(1.0, max(0.0, METHODS[self.method](answer, reference) / 100))
        found = f"similarity {score:.2f} to the reference ({self.method}{', on the texts cut short' if cut else ''})"
        if score >= self.threshold:
            return Verdict.ok(f"{found}, at least {self.threshold:g}", score)
        return Verdict.fail(f"{found}, under {self.threshold:g}", score)
