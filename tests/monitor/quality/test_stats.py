"""The Wilson interval the pass rates are reported and scored with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.quality.stats import wilson


def test_known_values():
    # 27 of 30 (the risk model's worked example): 74.4% to 96.5%, as any Wilson calculator gives.
    assert wilson(27, 30) == pytest.approx((0.74379, 0.96540), abs=1e-5)
    assert wilson(0, 0) == (0.0, 1.0)  # nothing judged: nothing known


@given(st.integers(1, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_the_interval_holds_the_observed_rate_and_ends_exactly_at_0_and_1(case):
    passed, n = case
    lo, hi = wilson(passed, n)
    assert 0.0 <= lo <= passed / n <= hi <= 1.0
    assert (lo == 0.0) == (passed == 0) and (hi == 1.0) == (passed == n)


@given(st.integers(1, 2_000).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))))
def test_one_more_pass_never_lowers_the_bound_the_risk_model_counts(case):
    passed, n = case
    assert wilson(passed + 1, n)[0] > wilson(passed, n)[0]


def test_impossible_counts_are_refused():
    for passed, n in ((-1, 3), (4, 3), (0, -1)):
        with pytest.raises(ValueError):
            wilson(passed, n)
