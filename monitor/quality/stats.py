"""Pass rates with honest error bars: the Wilson score interval.

A pass rate from 30 cases is not a fact but an estimate; the risk model counts a fallback's quality
as the interval's lower bound, so fewer cases can never look better than more. Wilson (1927), "Probable
inference, the law of succession, and statistical inference", JASA 22:209-212; preferred over the normal
("Wald") interval, which collapses to zero width at 0 or n passes (Brown, Cai & DasGupta 2001,
"Interval estimation for a binomial proportion", Statistical Science 16(2)).
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile: a two-sided 95% interval


def wilson(passed: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The interval for the true pass rate after ``passed`` of ``n`` cases passed; (0, 1) when n is 0."""
    if n < 0 or passed < 0 or passed > n:
        raise ValueError(f"wilson: need 0 <= passed <= n, got passed={passed}, n={n}")
    if n == 0:
        return 0.0, 1.0
    if passed == 0:  # exact ends: floating point would give 5.6e-17 and 0.9999999999999999
        return 0.0, _upper(passed, n, z)
    if passed == n:
        return _lower(passed, n, z), 1.0
    return _lower(passed, n, z), _upper(passed, n, z)


def _lower(passed: int, n: int, z: float) -> float:
    centre, half = _centre_half(passed, n, z)
    return max(0.0, centre - half)


def _upper(passed: int, n: int, z: float) -> float:
    centre, half = _centre_half(passed, n, z)
    return min(1.0, centre + half)


def _centre_half(passed: int, n: int, z: float) -> tuple[float, float]:
    p = passed / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre, half
