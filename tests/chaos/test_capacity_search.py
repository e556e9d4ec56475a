"""The capacity search on synthetic measures (a backend that holds every rate up to a known threshold),
and the pure verdict of one step (`chaos.capacity.step.judge`) on made-up arrivals."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.capacity import Arrival, Criteria, Step, allowed_late, plan, search, search_async
from chaos.capacity.step import balanced, judge, nearest_rank, spread
from probes import Generation
from probes.result import ErrorKind, ProbeResult


class Threshold:
    """A backend that holds every rate up to ``limit``: the measure, and the rates it was asked."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.asked: list[float] = []

    def __call__(self, rate: float) -> Step:
        self.asked.append(rate)
        return Step(rate=rate, ok=rate <= self.limit, requests=30)


def test_a_step_function_at_a_known_rate_is_found_within_ten_percent():
    backend = Threshold(6.0)
    found = search(backend, max_rate=64, start=1)
    assert 6.0 / 1.1 <= found.rate <= 6.0
    assert backend.asked[:4] == [1, 2, 4, 8]  # geometric growth until the first failure
    assert all(4 < r < 8 for r in backend.asked[4:])  # then only between the last good and the first bad
    assert found.best is not None and found.best.rate == found.rate and found.best.ok
    assert [s.rate for s in found.steps] == backend.asked
    assert not found.capped


def test_a_backend_failing_at_every_rate_gives_zero():
    backend = Threshold(0.0)
    found = search(backend, max_rate=16, start=1, min_rate=0.1)
    assert found.rate == 0 and found.best is None
    assert backend.asked == [1, 0.5, 0.25, 0.125, 0.1]  # down to the minimum, tried exactly, never below
    assert "every rate down to the minimum, 0.1 rps" in found.why


def test_a_backend_holding_every_rate_stops_at_max_rate_and_says_it_may_hold_more():
    backend = Threshold(1e9)
    found = search(backend, max_rate=5, start=1)
    assert backend.asked == [1, 2, 4, 5]
    assert found.rate == 5 and found.capped
    assert "may hold more" in found.why


def test_a_failing_start_shrinks_then_bisects_upward():
    backend = Threshold(0.3)
    found = search(backend, max_rate=16, start=1, min_rate=0.05)
    assert backend.asked[:3] == [1, 0.5, 0.25]
    assert 0.3 / 1.1 <= found.rate <= 0.3


def test_the_start_is_clamped_into_the_allowed_range():
    backend = Threshold(100)
    search(backend, max_rate=3, start=10)
    assert backend.asked == [3]
    backend = Threshold(100)
    search(backend, max_rate=3, start=0.01, min_rate=0.5)
    assert backend.asked[0] == 0.5


@pytest.mark.parametrize("bad", [{"max_rate": 0}, {"max_rate": float("nan")}, {"max_rate": 4, "growth": 1},
                                 {"max_rate": 4, "min_rate": 5}, {"max_rate": 4, "resolution": 0},
                                 {"max_rate": 4, "start": -1}, {"max_rate": True}])
def test_settings_that_cannot_search_are_refused(bad):
    with pytest.raises(ValueError):
        search(Threshold(1), **bad)


def test_a_measure_that_gives_no_step_is_a_defect_said_plainly():
    with pytest.raises(TypeError, match="must give a Step"):
        search(lambda rate: rate > 1, max_rate=4)


async def test_the_async_driver_asks_the_same_rates():
    backend = Threshold(3.3)

    async def measure(rate: float) -> Step:
        await asyncio.sleep(0)
        return backend(rate)

    found = await search_async(measure, max_rate=64)
    again = Threshold(3.3)
    assert search(again, max_rate=64).rate == found.rate and again.asked == backend.asked


rates = st.floats(min_value=0.01, max_value=1000, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(limit=st.floats(min_value=0, max_value=2000, allow_nan=False), max_rate=rates, start=rates,
       min_rate=st.floats(min_value=0.01, max_value=10), growth=st.floats(min_value=1.1, max_value=4),
       resolution=st.floats(min_value=0.01, max_value=0.5))
def test_any_threshold_in_range_is_found_within_resolution(limit, max_rate, start, min_rate, growth, resolution):
    if min_rate > max_rate:
        min_rate, max_rate = max_rate, min_rate
    backend = Threshold(limit)
    found = search(backend, max_rate=max_rate, start=start, min_rate=min_rate, growth=growth, resolution=resolution)
    assert all(min_rate <= r <= max_rate for r in backend.asked)  # never beyond max-rate, never under min-rate
    assert len(backend.asked) < 200  # it ends
    if limit >= max_rate:
        assert found.rate == max_rate and found.capped
    elif limit < min_rate:
        assert found.rate == 0 and found.best is None
    else:
        assert found.rate <= limit < found.rate * (1 + resolution) * (1 + 1e-9)
        assert found.best is not None and found.best.ok


@settings(max_examples=200, deadline=None)
@given(oks=st.lists(st.booleans(), min_size=1, max_size=60), max_rate=rates)
def test_whatever_a_noisy_backend_says_the_result_is_a_rate_it_held(oks, max_rate):
    answers = iter(oks * 10)

    def noisy(rate: float) -> Step:
        return Step(rate=rate, ok=next(answers, False))

    found = search(noisy, max_rate=max_rate, min_rate=min(0.1, max_rate))
    assert 0 <= found.rate <= max_rate
    if found.rate:
        assert found.best is not None and found.best.ok and found.best.rate == found.rate
        assert any(s is found.best for s in found.steps)
    else:
        assert found.best is None and not found.steps[0].ok


def test_the_plan_is_a_generator_the_caller_drives():
    gen = plan(max_rate=8, start=2)
    assert next(gen) == 2
    assert gen.send(Step(rate=2, ok=True)) == 4
    assert gen.send(Step(rate=4, ok=True)) == 8
    with pytest.raises(StopIteration) as done:
        gen.send(Step(rate=8, ok=True))
    assert done.value.value.rate == 8


# -- one step's verdict ----------------------------------------------------------------------------------

def _arrival(i: int, latency_ms: float | None, kind: ErrorKind = ErrorKind.OK, *, ttft_ms: float | None = None,
             **flags) -> Arrival:
    due = float(i)
    result = ProbeResult(target="t", provider="openai", model="m", at=datetime.now(UTC), status=kind.status,
                         error_kind=kind, ttft_ms=ttft_ms, total_ms=latency_ms)
    arrival = Arrival(index=i, due=due, sent=due, **flags)
    if latency_ms is not None and not flags:
        arrival.done = due + latency_ms / 1000
        arrival.value = Generation(result=result, text="answer")
    return arrival


TOTAL_1S = Criteria(budget_ms=1000, on="total", min_pass_rate=0.8)


@pytest.mark.parametrize(("n", "allowed"), [(1, 0), (19, 0), (20, 1), (30, 1), (39, 1), (40, 2), (100, 5)])
def test_p95_holds_while_at_most_five_percent_are_late(n, allowed):
    assert allowed_late(n) == allowed
    fast = [_arrival(i, 100) for i in range(n - allowed)]
    slow = [_arrival(i, 5000) for i in range(allowed)]
    assert judge(1, fast + slow, TOTAL_1S, verdicts=[]).ok
    assert not judge(1, fast[1:] + slow + [_arrival(99, 5000)], TOTAL_1S, verdicts=[]).ok


def test_a_slow_step_says_its_p95_and_how_many_were_late():
    arrivals = [_arrival(i, 100) for i in range(27)] + [_arrival(i, 2500) for i in range(3)]
    step = judge(2.0, arrivals, TOTAL_1S, verdicts=[True] * 10)
    assert not step.ok and step.late == 3 and step.requests == 30 and step.errors == 0
    assert step.p95_ms == pytest.approx(2500)
    assert step.why == "p95 2500 ms, over the 1000 ms budget: 3 of 30 late"


def test_errors_count_as_late_and_apart_by_kind():
    arrivals = ([_arrival(i, 100) for i in range(26)] + [_arrival(i, 50, ErrorKind.OVERLOADED) for i in range(2)]
                + [_arrival(90, None, cut=True), _arrival(91, None, shed=True)])
    step = judge(1, arrivals, TOTAL_1S, verdicts=[])
    assert not step.ok
    assert step.errors == 4 and step.late == 4
    assert step.error_kinds == {"overloaded": 2, "cut": 1, "shed": 1}
    assert "unanswered: overloaded 2" in step.why


def test_a_pass_rate_under_the_bar_fails_a_fast_step_and_unjudged_verdicts_do_not_count():
    arrivals = [_arrival(i, 100) for i in range(30)]
    low = judge(1, arrivals, TOTAL_1S, verdicts=[True] * 7 + [False] * 3 + [None] * 5)
    assert not low.ok and low.pass_rate == pytest.approx(0.7) and low.checked == 15
    assert "pass rate 70% under 80% (7 of 10 checked answers passed)" in low.why
    assert judge(1, arrivals, TOTAL_1S, verdicts=[True] * 8 + [False] * 2).ok
    assert judge(1, arrivals, TOTAL_1S, verdicts=[None] * 4).ok  # nothing judged: latency decides
    latency_only = Criteria(budget_ms=1000)
    assert judge(1, arrivals, latency_only, verdicts=[False] * 30).ok


def test_a_first_token_budget_is_judged_on_time_to_first_token_from_when_the_request_was_due():
    # Each answer: 300 ms to its first token, 3 s in all; the budget is 500 ms to the first token.
    on_time = [_arrival(i, 3000, ttft_ms=300) for i in range(30)]
    step = judge(1, on_time, Criteria(budget_ms=500, on="first_token"), verdicts=[])
    assert step.ok and step.p95_ms == pytest.approx(300)
    queued = [_arrival(i, 3000, ttft_ms=300) for i in range(30)]
    for a in queued:  # sent on time but waited 400 ms before reaching the wire: charged to the first token
        a.done += 0.4
    assert not judge(1, queued, Criteria(budget_ms=500, on="first_token"), verdicts=[]).ok


def test_a_step_stopped_early_fails_and_counts_the_abandoned_requests_that_were_already_late():
    overdue = _arrival(6, None, stopped=True)
    overdue.ended = overdue.due + 1.5  # abandoned 1.5 s after it was due: over the 1 s budget
    recent = _arrival(7, None, stopped=True)
    recent.ended = recent.due + 0.2  # abandoned before its budget ran out: unknown, not late
    arrivals = [_arrival(i, 100) for i in range(5)] + [_arrival(5, 1200), overdue, recent]
    step = judge(8, arrivals, TOTAL_1S, verdicts=[], planned=160, stopped_early=True)
    assert not step.ok and step.late == 2 and step.error_kinds == {"stopped": 2}
    assert step.p95_ms == pytest.approx(1500)  # the abandoned one counts at least as long as it had run
    assert step.why == ("lost early: 2 of 160 requests over the 1000 ms budget (p95 allows 8); "
                        "2 abandoned in flight, 152 not sent")
    assert judge(8, [], TOTAL_1S, verdicts=[]).why == "no request was sent"


def test_a_generator_that_fell_behind_its_schedule_is_said():
    arrivals = [_arrival(i, 100) for i in range(30)]
    assert judge(1, arrivals, TOTAL_1S, verdicts=[]).lag_ms == 0
    for a in arrivals:
        a.sent += 0.2
        a.done += 0.2
    step = judge(1, arrivals, TOTAL_1S, verdicts=[])
    assert step.lag_ms == pytest.approx(200) and step.as_dict()["lag_ms"] == pytest.approx(200)
    assert "our generator sent late (p95 200 ms behind schedule)" in step.why


def test_the_stored_form_of_a_step_has_the_fields_the_figure_promises():
    step = judge(1.23456, [_arrival(i, 100) for i in range(30)], TOTAL_1S, verdicts=[True])
    stored = step.as_dict()
    assert {"rate", "p95_ms", "pass_rate", "ok", "requests", "errors"} <= set(stored)
    assert stored["rate"] == 1.2346 and stored["ok"] is True and stored["requests"] == 30


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=200))
def test_nearest_rank_is_one_of_the_values_and_at_least_95_percent_are_at_most_it(values):
    p95 = nearest_rank(values)
    if not values:
        assert p95 is None
        return
    assert p95 in values
    assert sum(v <= p95 for v in values) >= 0.95 * len(values)


@given(st.integers(min_value=0, max_value=500), st.integers(min_value=1, max_value=60))
def test_the_sample_is_bounded_distinct_and_spread_to_the_end(n, k):
    items = list(range(n))
    picked = spread(items, k)
    assert len(picked) == min(n, k) and len(set(picked)) == len(picked) and picked == sorted(picked)
    if n > k:
        assert picked[0] == 0 and picked[-1] >= n - n // k - 1


@settings(max_examples=300, deadline=None)
@given(n=st.integers(min_value=0, max_value=300), cases=st.integers(min_value=1, max_value=50),
       offset=st.integers(min_value=0, max_value=100), k=st.integers(min_value=0, max_value=60),
       lost=st.sets(st.integers(min_value=0, max_value=299)))
def test_the_checked_sample_is_balanced_over_the_cases(n, cases, offset, k, lost):
    answered = [Arrival(index=i, due=float(i)) for i in range(n) if i not in lost]

    def case_of(a: Arrival) -> int:
        return (offset + a.index) % cases

    picked = balanced(answered, case_of, k)
    assert len(picked) == min(k, len(answered))
    assert len({a.index for a in picked}) == len(picked) <= k
    assert [a.index for a in picked] == sorted(a.index for a in picked)
    counts = Counter(case_of(a) for a in picked)
    available = Counter(case_of(a) for a in answered)
    full = [c for c in counts if counts[c] < available[c]]  # cases with answers left unpicked
    if counts and full:
        assert max(counts.values()) - min(counts[c] for c in full) <= 1


def test_a_stride_that_would_land_on_half_the_cases_is_not_the_sample():
    # 60 answers over 8 cases, 30 to check: every second answer would be cases 0, 2, 4, 6 only.
    answered = [Arrival(index=i, due=float(i)) for i in range(60)]
    picked = balanced(answered, lambda a: a.index % 8, 30)
    assert sorted(Counter(a.index % 8 for a in picked).values()) == [3, 3, 4, 4, 4, 4, 4, 4]


def test_the_package_face_is_a_sorted_list_of_names_it_has():
    import chaos.capacity

    assert chaos.capacity.__all__ == sorted(chaos.capacity.__all__)
    assert all(hasattr(chaos.capacity, name) for name in chaos.capacity.__all__)
