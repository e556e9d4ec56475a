"""``one_of``: the answer is one of a fixed set of labels, or (``multi``) a list of them.

Answers and labels are compared as labels: trimmed of whitespace, quotes and final punctuation, and
case-folded, so ``"Positive."`` is the label ``positive``. A list answer is a JSON array, one item a
line, or comma-separated. With ``min_overlap``, the answer's set is also compared with the set the
case's reference names (read the same way): their Jaccard index must reach it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from annotated_types import Interval, MinLen
from pydantic import Field, PrivateAttr, field_validator, model_validator

from monitor.quality.checks._text import label, quote, split_items
from monitor.quality.checks.base import Check, Context, Verdict, register


@register
class OneOf(Check):
    name = "one_of"
    type: Literal["one_of"] = "one_of"
    labels: Annotated[list[str], MinLen(1)]
    multi: bool = False
    """The answer is a list of labels, each of which must be one of ``labels``."""
    max_items: Annotated[int, Interval(ge=1)] | None = None
    """With ``multi``: at most this many items."""
    min_overlap: Annotated[float, Interval(ge=0, le=1), Field(allow_inf_nan=False)] | None = None
    """With ``multi``: the Jaccard index of the answer's set and the reference's set must reach this."""
    _known: frozenset[str] = PrivateAttr()

    @field_validator("labels")
    @classmethod
    def _real_labels(cls, labels: list[str]) -> list[str]:
        blank = [i for i, text in enumerate(labels) if not label(text)]
        if blank:
            raise ValueError(f"label {blank[0]} is blank once trimmed of spaces, quotes and punctuation")
        return labels

    @model_validator(mode="after")
    def _multi_settings(self) -> Self:
        unused = [f for f in ("max_items", "min_overlap") if getattr(self, f) is not None]
        if unused and not self.multi:
            verb = "apply" if len(unused) > 1 else "applies"
            raise ValueError(f"{' and '.join(unused)} {verb} only with multi: true")
        return self

    def model_post_init(self, context: Any) -> None:
        self._known = frozenset(label(text) for text in self.labels)

    def run(self, answer: str, ctx: Context) -> Verdict:
        if not self.multi:
            got = label(answer)
            if got in self._known:
                return Verdict.ok(f"{quote(got)} is a label")
            return Verdict.fail(f"{quote(got)} is not one of {self._shown()}")
        if self.min_overlap is not None and not ctx.reference:
            return Verdict.unjudged("one_of: min_overlap needs the case's reference answer (airisk eval reference)")
        items = list(dict.fromkeys(label(item) for item in split_items(answer)))
        items = [item for item in items if item]
        if not items:
            return Verdict.fail("no items in the answer")
        strangers = [item for item in items if item not in self._known]
        problems = []
        if strangers:
            shown = ", ".join(map(quote, strangers[:3]))
            problems.append(f"{len(strangers)} of {len(items)} items not labels ({shown})")
        if self.max_items is not None and len(items) > self.max_items:
            problems.append(f"{len(items)} items, more than {self.max_items}")
        score = 1 - len(strangers) / len(items)
        found = f"{len(items)} labels" if not strangers else ""
        if self.min_overlap is not None:
            wanted = {item for item in (label(i) for i in split_items(ctx.reference)) if item}
            got = set(items)
            union = got | wanted
            score = len(got & wanted) / len(union) if union else 1.0
            found = f"overlap {score:.2f} with the reference's {len(wanted)}"
            if score < self.min_overlap:
                problems.append(f"overlap {score:.2f} with the reference's {len(wanted)}, under {self.min_overlap:g}")
        if problems:
            return Verdict.fail("; ".join(problems), score)
        return Verdict.ok(found, score)

    def _shown(self) -> str:
        shown = ", ".join(quote(text, 30) for text in self.labels[:8])
        return shown + (f" (and {len(self.labels) - 8} more)" if len(self.labels) > 8 else "")
