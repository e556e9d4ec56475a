"""Grade and score: from expected downtime minutes, weighted by criticality, to a letter and a number.

The thresholds are monthly availability budgets (30-day month): A fits 99.99 %, B 99.95 %, C 99.9 %,
D 99.5 %, E 99 %; a feature weighs its minutes by criticality first, so a critical feature (x4)
needs 99.975 % for a C where a medium one needs 99.9 %. `docs/RISK_MODEL.md` says why.
"""

from __future__ import annotations

import math

MONTH_MINUTES = 30 * 24 * 60
"""Minutes in the model's month (30 days): expected minutes = unavailability x 43,200."""
WEIGHTS: dict[str, float] = {"low": 0.5, "medium": 1.0, "high": 2.0, "critical": 4.0}
"""Criticality -> the weight on its expected minutes before grading."""
GRADES: tuple[tuple[str, float], ...] = (("A", 4.32), ("B", 21.6), ("C", 43.2), ("D", 216.0), ("E", 432.0))
"""Upper bounds of weighted minutes a month, inclusive: the monthly budgets of 99.99 / 99.95 / 99.9 /
99.5 / 99 % availability. Anything above the last is F."""
GRADE_ORDER = "ABCDEF"
"""Best to worst."""
_SCORE_SPAN = math.log10(1 + WEIGHTS["critical"] * MONTH_MINUTES)


def grade_for(weighted_minutes: float) -> str:
    """A (<= 4.32 weighted minutes a month) to F (> 432); see `GRADES`.

    A bound holds to within float rounding (1 - 0.999 is not exactly 0.001), so that 99.9 % measured
    is a C, as the table says.
    """
    for grade, bound in GRADES:
        if weighted_minutes <= bound * (1 + 1e-9):
            return grade
    return "F"


def score_for(weighted_minutes: float) -> float:
    """100 (no expected downtime) down to 0 (a critical feature down all month), log-scaled, for sorting."""
    w = min(max(weighted_minutes, 0.0), WEIGHTS["critical"] * MONTH_MINUTES)
    return 100.0 * (1.0 - math.log10(1.0 + w) / _SCORE_SPAN)
