"""Fixed-bucket latency histograms: mergeable, so percentiles stay computable over any window.

A histogram is a plain ``list[int]`` of ``len(EDGES_MS) + 1`` counts (it is stored as JSON in
the rollup tables). Bucket 0 holds values below ``EDGES_MS[0]``, bucket ``i`` holds
``EDGES_MS[i-1] <= ms < EDGES_MS[i]``, and the last bucket holds ``ms >= EDGES_MS[-1]``.

The edges are log-spaced from 1 ms to 120 s in 84 steps of ~1.149x, so a percentile read from a
histogram is within one bucket (< 15 %, typically a few %) of the exact one. The edges are part
of the stored data: changing them needs a migration that rebuilds every rollup.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence

_LOW_MS = 1.0
_HIGH_MS = 120_000.0
_STEPS = 84
# Rounded to the microsecond so the edges do not depend on the last bit of a platform's pow().
EDGES_MS: tuple[float, ...] = tuple(
    round(_LOW_MS * (_HIGH_MS / _LOW_MS) ** (i / _STEPS), 3) for i in range(_STEPS + 1)
)
N_BUCKETS = len(EDGES_MS) + 1


def bucket_of(ms: float) -> int:
    """The index of the bucket ``ms`` falls in (negative values count as 0 ms)."""
    return bisect_right(EDGES_MS, ms)


def bounds(index: int) -> tuple[float, float]:
    """``[low, high)`` of a bucket; the overflow bucket's ``high`` is ``inf``."""
    low = 0.0 if index == 0 else EDGES_MS[index - 1]
    high = math.inf if index >= len(EDGES_MS) else EDGES_MS[index]
    return low, high


def empty() -> list[int]:
    return [0] * N_BUCKETS


def _fit(hist: list[int]) -> list[int]:
    # Rows start with the column default ``[]``: treat a short list as zeros.
    if len(hist) < N_BUCKETS:
        hist.extend([0] * (N_BUCKETS - len(hist)))
    return hist


def add(hist: list[int], ms: float, count: int = 1) -> list[int]:
    """Counts ``ms`` into ``hist`` in place and returns it."""
    _fit(hist)[bucket_of(ms)] += count
    return hist


def merge(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """A new histogram holding both (either may be ``[]``)."""
    out = empty()
    for i, n in enumerate(a):
        out[i] += n
    for i, n in enumerate(b):
        out[i] += n
    return out


def merge_all(hists: Iterable[Sequence[int]]) -> list[int]:
    out = empty()
    for h in hists:
        for i, n in enumerate(h):
            out[i] += n
    return out


def from_values(values: Iterable[float]) -> list[int]:
    hist = empty()
    for v in values:
        hist[bucket_of(v)] += 1
    return hist


def total(hist: Sequence[int]) -> int:
    return sum(hist)


def percentile(hist: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (``0 <= q <= 1``, so p99 is ``0.99``), ``None`` for an empty histogram.

    Rank ``q * n`` is located in the bucket where the running count first reaches it, and
    interpolated linearly inside that bucket; so the answer lies in the same bucket as the exact
    nearest-rank percentile. The overflow bucket has no upper edge: it answers ``EDGES_MS[-1]``.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1] (p99 is 0.99), got {q!r}")
    n = sum(hist)
    if n == 0:
        return None
    rank = q * n
    seen = 0
    for i, count in enumerate(hist):
        if count == 0:
            continue
        if seen + count >= rank:
            low, high = bounds(i)
            if math.isinf(high):
                return low
            return low + (high - low) * max(0.0, rank - seen) / count
        seen += count
    return bounds(len(hist) - 1)[0]  # only reached through float rounding at q == 1


def exact_percentile(values: Sequence[float], q: float) -> float | None:
    """The exact ``q`` quantile of raw values, linear between closest ranks (numpy's default)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1] (p99 is 0.99), got {q!r}")
    if not values:
        return None
    data = sorted(values)
    pos = q * (len(data) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)
