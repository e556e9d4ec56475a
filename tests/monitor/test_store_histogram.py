"""Latency histograms: percentiles read from buckets stay within one bucket of the exact ones."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.store import histogram as h


def test_edges_span_1ms_to_120s_in_steps_of_about_15_percent() -> None:
    edges = h.EDGES_MS
    assert edges[0] == 1.0
    assert edges[-1] == 120_000.0
    ratios = [b / a for a, b in itertools.pairwise(edges)]
    assert all(1.14 < r < 1.16 for r in ratios)
    # Stored histograms depend on these exact edges: pin them.
    assert len(edges) == 85
    assert h.N_BUCKETS == 86
    assert edges[42] == pytest.approx(math.sqrt(120_000), rel=1e-5)


@pytest.mark.parametrize(
    ("ms", "bucket"),
    [(-5.0, 0), (0.0, 0), (0.999, 0), (1.0, 1), (1.1, 1), (120_000.0, 85), (1e9, 85)],
)
def test_bucket_of_edges(ms: float, bucket: int) -> None:
    assert h.bucket_of(ms) == bucket


def test_every_value_falls_within_its_bucket_bounds() -> None:
    for ms in (0.5, 3.0, 17.0, 250.0, 999.9, 1000.0, 45_000.0, 119_999.0):
        low, high = h.bounds(h.bucket_of(ms))
        assert low <= ms < high


def test_add_fills_short_stored_lists_and_merge_adds() -> None:
    stored: list[int] = []  # the column default
    h.add(stored, 120.0)
    h.add(stored, 120.0)
    assert len(stored) == h.N_BUCKETS and sum(stored) == 2
    other = h.from_values([5.0, 120.0])
    merged = h.merge(stored, other)
    assert merged[h.bucket_of(120.0)] == 3 and merged[h.bucket_of(5.0)] == 1
    assert h.merge([], []) == h.empty()
    assert h.merge_all([stored, other, []]) == merged


def test_percentile_of_empty_is_none_and_q_is_a_fraction() -> None:
    assert h.percentile(h.empty(), 0.5) is None
    assert h.percentile([], 0.5) is None
    with pytest.raises(ValueError, match=r"p99 is 0\.99"):
        h.percentile(h.from_values([1.0]), 99)


def test_percentiles_of_a_typical_latency_mix() -> None:
    # 98 fast answers around 300 ms, 2 slow ones at 8 s: p50 near 300 ms, p99 in the slow bucket.
    values = [280.0 + i for i in range(98)] + [8000.0, 8000.0]
    hist = h.from_values(values)
    assert h.percentile(hist, 0.5) == pytest.approx(h.exact_percentile(values, 0.5), rel=0.15)
    low, high = h.bounds(h.bucket_of(8000.0))
    assert low <= h.percentile(hist, 0.99) <= high
    assert h.percentile(hist, 0.0) == h.bounds(h.bucket_of(280.0))[0]
    assert h.percentile(hist, 1.0) == pytest.approx(high)


def test_overflow_bucket_answers_its_lower_edge() -> None:
    assert h.percentile(h.from_values([500_000.0]), 0.99) == 120_000.0


def test_exact_percentile_interpolates_like_numpy() -> None:
    assert h.exact_percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert h.exact_percentile([10.0], 0.99) == 10.0
    assert h.exact_percentile([], 0.5) is None


def _nearest_rank(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[max(0, math.ceil(q * len(data)) - 1)]


latencies = st.lists(st.floats(min_value=0.0, max_value=119_999.0, allow_nan=False), min_size=1, max_size=300)
quantiles = st.sampled_from([0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0])


@settings(max_examples=300, deadline=None)
@given(values=latencies, q=quantiles)
def test_histogram_percentile_is_within_one_bucket_of_the_exact_one(values: list[float], q: float) -> None:
    exact = _nearest_rank(values, q)
    got = h.percentile(h.from_values(values), q)
    low, high = h.bounds(h.bucket_of(exact))
    assert got is not None
    assert abs(got - exact) <= high - low
    # In practice that is a relative error under 15 % above 1 ms.
    if exact >= 1.0:
        assert abs(got - exact) <= 0.15 * exact + 1e-9


@settings(max_examples=100, deadline=None)
@given(a=latencies, b=latencies, q=quantiles)
def test_merging_histograms_equals_histogram_of_both(a: list[float], b: list[float], q: float) -> None:
    assert h.merge(h.from_values(a), h.from_values(b)) == h.from_values(a + b)
    assert h.percentile(h.merge(h.from_values(a), h.from_values(b)), q) == h.percentile(h.from_values(a + b), q)
