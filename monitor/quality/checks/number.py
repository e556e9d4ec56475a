"""``number``: the first number in the answer is within a tolerance of the expected one."""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal, Self

from annotated_types import Interval
from pydantic import Field, model_validator

from monitor.quality.checks._text import quote
from monitor.quality.checks.base import Check, Context, Verdict, register

# A sign (ASCII or U+2212), digits with or without thousands separators, decimals, an exponent.
# Not inside a word ("COVID-19" reads 19, "H2O" no number) nor after a decimal point.
_NUMBER = re.compile(r"(?<![\w.,])([-+\u2212]?)((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE]([-+]?\d{1,4}))?")
Finite = Annotated[float, Field(allow_inf_nan=False)]
Tolerance = Annotated[float, Interval(ge=0), Field(allow_inf_nan=False)]


def first_number(text: str) -> float | None:
    """The first number written in ``text`` ("-1,234.5", "+3", "2.5e3", ".5"), or ``None``."""
    for match in _NUMBER.finditer(text):
        sign, digits, exponent = match.groups()
        written = digits.replace(",", "") + (f"e{exponent}" if exponent else "")
        try:
            value = float(written)
        except ValueError:
            continue
        return -value if sign in ("-", "\u2212") else value
    return None


@register
class Number(Check):
    name = "number"
    type: Literal["number"] = "number"
    value: Finite | None = None
    """The expected number; unset: the first number in the case's reference answer."""
    abs_tol: Tolerance | None = None
    """Pass when the answer is at most this far from the value..."""
    rel_tol: Tolerance | None = None
    """...or at most this share of the value away (0.05: within 5%). Give one or both."""

    @model_validator(mode="after")
    def _a_tolerance(self) -> Self:
        if self.abs_tol is None and self.rel_tol is None:
            raise ValueError("give abs_tol, rel_tol or both (0 for an exact match)")
        return self

    def run(self, answer: str, ctx: Context) -> Verdict:
        expected = self.value
        if expected is None:
            expected = first_number(ctx.reference or "")
            if expected is None or not math.isfinite(expected):
                return Verdict.unjudged("number: no value set and no number in the case's reference answer")
        got = first_number(answer)
        if got is None:
            return Verdict.fail(f"no number in {quote(answer)}")
        tolerance = max(self.abs_tol or 0.0, (self.rel_tol or 0.0) * abs(expected))
        error = abs(got - expected)
        within = f"{expected:g} \u00b1 {tolerance:g}"
        if not math.isfinite(error):
            return Verdict.fail(f"read {got:g}, expected {within}")
        if error <= tolerance:
            return Verdict.ok(f"read {got:g}, expected {within}")
        return Verdict.fail(f"read {got:g}, expected {within} (off by {error:g})", tolerance / error)
