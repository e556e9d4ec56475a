"""``length``: the answer's length in characters and/or words lies within bounds."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from annotated_types import Interval
from pydantic import ValidationInfo, field_validator, model_validator

from monitor.quality.checks.base import Check, Context, Verdict, register

Count = Annotated[int, Interval(ge=0)]


@register
class Length(Check):
    """Characters are counted once the answer is stripped of surrounding whitespace; words are runs of
    non-space characters."""

    name = "length"
    type: Literal["length"] = "length"
    min_chars: Count | None = None
    max_chars: Count | None = None
    min_words: Count | None = None
    max_words: Count | None = None

    @field_validator("max_chars", "max_words")
    @classmethod
    def _not_under_min(cls, value: int | None, info: ValidationInfo) -> int | None:
        low = info.data.get(info.field_name.replace("max_", "min_"))
        if value is not None and low is not None and value < low:
            raise ValueError(f"{value} is under {info.field_name.replace('max_', 'min_')} ({low})")
        return value

    @model_validator(mode="after")
    def _a_bound(self) -> Self:
        if (self.min_chars, self.max_chars, self.min_words, self.max_words) == (None, None, None, None):
            raise ValueError("give at least one of min_chars, max_chars, min_words, max_words")
        return self

    def run(self, answer: str, ctx: Context) -> Verdict:
        counts = {"chars": len(answer.strip()), "words": len(answer.split())}
        problems: list[str] = []
        score = 1.0
        for unit, count in counts.items():
            low, high = getattr(self, f"min_{unit}"), getattr(self, f"max_{unit}")
            if low is not None and count < low:
                problems.append(f"{count} {unit}, fewer than {low}")
                score = min(score, count / low)
            if high is not None and count > high:
                problems.append(f"{count} {unit}, more than {high}")
                score = min(score, high / count)
        if problems:
            return Verdict.fail("; ".join(problems), score)
        shown = [f"{counts[u]} {u}" for u in counts if getattr(self, f"min_{u}") is not None
                 or getattr(self, f"max_{u}") is not None]
        return Verdict.ok(f"{', '.join(shown)}, within bounds")
