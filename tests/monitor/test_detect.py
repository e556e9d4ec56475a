"""Outage detection as on-call meets it: when a target is called DOWN, DEGRADED or UP again, why,
how fast with confirmation probes, and that a flapping provider does not page on every flip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from monitor.config import format_path
from monitor.config.detection import DetectionConfig, MaintenanceWindow
from monitor.detect import Decision, Detector, observed_status
from probes.result import ErrorKind, ProbeResult, Status

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
OK, FAIL = ErrorKind.OK, ErrorKind.OVERLOADED
UP, DEGRADED, DOWN = Status.UP, Status.DEGRADED, Status.DOWN


def result(kind: ErrorKind, at: float, *, ttft: float = 400.0, total: float = 700.0, target: str = "openai"):
    """A result of a probe started ``at`` seconds after T0."""
    return ProbeResult(target=target, provider="openai", model="gpt-4o-mini", at=T0 + timedelta(seconds=at),
                       status=kind.status, error_kind=kind, ttft_ms=ttft if kind is OK else None, total_ms=total)


def feed_all(detector: Detector, kinds, *, every: float = 60.0, start: float = 0.0) -> list[Decision]:
    """Feeds one result per kind, ``every`` seconds apart (base-interval probes, no confirmations)."""
    return [detector.feed(result(k, start + i * every)) for i, k in enumerate(kinds)]


def follow(detector: Detector, kinds, *, start: float = 0.0, interval: float = 60.0, probe_ms: float = 300.0):
    """Feeds results the way the scheduler sends probes: a confirmation `confirm_in` seconds after a
    result that asks for one, else the next probe one interval later. Returns (start s, decision) pairs."""
    out, t, confirm = [], start, False
    for kind in kinds:
        decision = detector.feed(result(kind, t, total=probe_ms), confirm=confirm)
        out.append((t, decision))
        confirm = decision.confirm_in is not None
        t += probe_ms / 1000 + (decision.confirm_in if confirm else interval)
    return out


def transitions(decisions) -> list[tuple[Status, Status]]:
    return [(d.transition.from_, d.transition.to) for d in decisions if d.transition]


# --- outages: DOWN, confirmed in seconds -------------------------------------------------------


def test_an_outage_is_confirmed_down_in_seconds_with_the_evidence():
    detector = Detector(DetectionConfig(), "openai")  # 5 failures, confirmations 1 s, 1 s, 2 s, 2 s apart
    steps = follow(detector, [OK, OK, FAIL, FAIL, FAIL, FAIL, FAIL, FAIL])
    (first_fail_at, first), *_ = [(t, d) for t, d in steps if d.observed is DOWN]
    assert first.state is UP and first.transition is None and first.confirm_in == 1.0
    assert [d.confirm_in for _, d in steps[2:7]] == [1.0, 1.0, 2.0, 2.0, None]  # then back to the interval

    down_at, down = steps[6]
    tr = down.transition
    assert down.state is DOWN and (tr.from_, tr.to) == (UP, DOWN)
    assert tr.cause == {"rule": "failures", "failures": 5, "threshold": 5, "kinds": {"overloaded": 5}}
    assert tr.since == T0 + timedelta(seconds=first_fail_at)  # when the evidence began
    assert tr.at == T0 + timedelta(seconds=down_at + 0.3)  # when the deciding probe ended
    assert (tr.at - tr.since).total_seconds() < 8  # seconds after the first failure, not 4 intervals
    assert steps[7][1].transition is None  # more failures: still DOWN, nothing new to announce


def test_one_failed_probe_is_not_an_outage():
    steps = follow(Detector(DetectionConfig(), "openai"), [OK, FAIL, OK, OK, FAIL, OK])
    assert all(d.state is UP and d.transition is None for _, d in steps)
    assert [d.confirm_in for _, d in steps] == [None, 1.0, None, None, 1.0, None]


def test_recovery_is_confirmed_too_and_says_how_long_it_lasted():
    detector = Detector(DetectionConfig(), "openai")
    steps = follow(detector, [FAIL] * 4 + [FAIL] * 3 + [OK, OK])
    first_ok, recovered = steps[-2][1], steps[-1][1]
    assert first_ok.state is DOWN and first_ok.confirm_in == 1.0  # one good probe is not a recovery
    tr = recovered.transition
    assert recovered.state is UP and (tr.from_, tr.to) == (DOWN, UP)
    assert tr.cause["rule"] == "recovered" and tr.cause["successes"] == 2 and tr.cause["threshold"] == 2
    assert tr.cause["lasted_s"] == pytest.approx((tr.since - T0).total_seconds(), abs=0.001)


def test_without_confirmation_probes_down_takes_threshold_intervals():
    detector = Detector(DetectionConfig(failure_threshold=3, confirm_after=[]), "openai")
    decisions = feed_all(detector, [OK, FAIL, FAIL, FAIL])
    assert [d.confirm_in for d in decisions] == [None] * 4
    assert [d.state for d in decisions] == [UP, UP, UP, DOWN]
    assert (decisions[-1].transition.at - decisions[-1].transition.since).total_seconds() == pytest.approx(120.7)


def test_confirmations_stop_when_the_list_runs_out_and_the_interval_finishes_the_job():
    detector = Detector(DetectionConfig(failure_threshold=3, confirm_after=["2s"]), "openai")
    steps = follow(detector, [FAIL, FAIL, FAIL])
    assert [d.confirm_in for _, d in steps] == [2.0, None, None]
    assert steps[-1][1].state is DOWN and steps[-1][0] > 60  # the third failure came one interval later


def test_a_hung_probe_gets_the_confirmations_a_down_needs_and_they_decide():
    detector = Detector(DetectionConfig(), "openai")  # failure_threshold 5, four confirmations
    feed_all(detector, [OK, OK])
    at = T0 + timedelta(seconds=120)
    assert detector.hedges(at=at) == 4  # the hung probe and four more failing would be DOWN
    hang = ErrorKind.FIRST_TOKEN_TIMEOUT
    first = detector.feed(result(hang, 120.0, total=20_000))
    assert first.state is UP and first.confirm_in == 1.0
    assert detector.hedges(at=at) == 3  # one failure in already: a probe hanging now plus three more
    # The four hedges started 5 s into the first probe end 20 s later, in any order of arrival.
    decisions = [detector.feed(result(hang, 125.0 + i * 0.01, total=20_000), confirm=True) for i in range(4)]
    assert [d.state for d in decisions] == [UP, UP, UP, DOWN]
    tr = decisions[-1].transition
    assert tr.since == T0 + timedelta(seconds=120) and tr.cause["kinds"] == {"first_token_timeout": 5}
    assert (tr.at - tr.since).total_seconds() == pytest.approx(25.03)  # not four deadlines one after another
    assert detector.hedges(at=at) == 0  # DOWN: a hang changes nothing


@pytest.mark.parametrize(("config", "expected"), [
    (DetectionConfig(hedge_after=None), 0),
    (DetectionConfig(confirm_after=["1s"]), 1),  # no more than confirm_after allows
    (DetectionConfig(failure_threshold=2, confirm_after=["1s", "1s", "1s"]), 1),  # no more than DOWN needs
    (DetectionConfig(failure_threshold=4, confirm_after=["1s", "1s", "1s"]), 3),
    (DetectionConfig(failure_threshold=1), 0),
])
def test_hedges_are_bounded_by_the_config(config, expected):
    assert Detector(config, "openai").hedges(at=T0) == expected


def test_hedges_count_the_confirmations_left_in_the_current_run():
    detector = Detector(DetectionConfig(), "openai")  # failure_threshold 5, confirm_after 1, 1, 2, 2 s
    follow(detector, [OK, FAIL, OK])  # a blip, confirmed away by a good confirmation
    at = T0 + timedelta(seconds=500)
    # A scheduled probe ends that run of confirmations: it gets all four again, not three.
    assert detector.hedges(at=at) == 4
    detector.feed(result(FAIL, 500.0))
    detector.feed(result(FAIL, 501.0), confirm=True)
    # Two failures in (the second a confirmation): a probe hanging now plus two more make five.
    assert detector.hedges(at=at, confirm=True) == 2
    assert detector.hedges(at=at) == 2
    short = Detector(DetectionConfig(confirm_after=["1s", "1s"]), "openai")
    short.feed(result(FAIL, 0.0))
    short.feed(result(FAIL, 1.0), confirm=True)
    # A hanging confirmation is the second and last of its run: nothing left to send with it;
    # a hanging scheduled probe starts a new run of two.
    assert short.hedges(at=T0, confirm=True) == 0
    assert short.hedges(at=T0) == 2


def test_no_hedges_inside_a_maintenance_window():
    window = MaintenanceWindow(start=T0, end=T0 + timedelta(hours=1))
    detector = Detector(DetectionConfig(maintenance=[window]), "openai")
    assert detector.hedges(at=T0 + timedelta(minutes=5)) == 0
    assert detector.hedges(at=T0 + timedelta(hours=2)) == 4


def test_a_target_slow_by_nature_is_hedged_later():
    detector = Detector(DetectionConfig(hedge_after=5.0), "openai")
    assert detector.hedge_after() == 5.0
    for i, ttft in enumerate([4000.0, 4200.0]):
        detector.feed(result(OK, i * 60, ttft=ttft, total=ttft + 300))
    assert detector.hedge_after() == 5.0  # two answers are not yet what it usually does
    detector.feed(result(OK, 120, ttft=4100.0, total=4400.0))
    assert detector.hedge_after() == pytest.approx(12.3)  # three times its usual first token
    detector.feed(result(OK, 121, ttft=30_000.0, total=30_300.0), confirm=True)  # hedges say nothing of it
    assert detector.hedge_after() == pytest.approx(12.3)
    assert Detector(DetectionConfig(hedge_after=None), "openai").hedge_after() is None


# --- DEGRADED: impaired, not gone ----------------------------------------------------------------


@pytest.mark.parametrize("kind", [ErrorKind.RATE_LIMITED, ErrorKind.WRONG_ANSWER, ErrorKind.CONTENT_FILTERED])
def test_rate_limits_wrong_answers_and_filtered_answers_degrade_but_never_page(kind):
    detector = Detector(DetectionConfig(), "openai")
    steps = follow(detector, [kind] * 30)
    assert {d.state for _, d in steps} == {UP, DEGRADED}
    tr = next(d.transition for _, d in steps if d.transition)
    assert (tr.from_, tr.to) == (UP, DEGRADED)
    assert tr.cause == {"rule": "degraded_results", "results": 5, "threshold": 5, "kinds": {str(kind): 5}}


def test_observed_status_counts_429_as_degraded():
    assert observed_status(result(ErrorKind.RATE_LIMITED, 0)) is DEGRADED
    assert observed_status(result(ErrorKind.QUOTA_EXHAUSTED, 0)) is DOWN  # no quota: nothing works
    assert observed_status(result(ErrorKind.SERVER_ERROR, 0)) is DOWN
    assert observed_status(result(OK, 0)) is UP


def test_a_recovery_that_is_still_rate_limited_lands_in_degraded():
    detector = Detector(DetectionConfig(failure_threshold=4, confirm_after=[]), "openai")
    decisions = feed_all(detector, [FAIL] * 4 + [ErrorKind.RATE_LIMITED, OK, OK, OK])
    assert transitions(decisions) == [(UP, DOWN), (DOWN, DEGRADED), (DEGRADED, UP)]


def test_a_degraded_target_that_fails_outright_goes_down():
    detector = Detector(DetectionConfig(failure_threshold=4, confirm_after=[]), "openai")
    decisions = feed_all(detector, [ErrorKind.RATE_LIMITED] * 4 + [FAIL] * 4)
    assert transitions(decisions) == [(UP, DEGRADED), (DEGRADED, DOWN)]


def test_slowness_degrades_on_the_window_median_not_on_one_spike():
    config = DetectionConfig(degraded_ttft_ms=2000, window=10, confirm_after=[])
    detector = Detector(config, "openai")
    fast, slow = 400.0, 6000.0
    ttfts = [fast] * 10 + [slow, slow, slow] + [fast] * 5 + [slow] * 8 + [fast] * 10
    decisions = [detector.feed(result(OK, i * 60, ttft=t, total=t + 300)) for i, t in enumerate(ttfts)]
    assert all(d.state is UP for d in decisions[:18])  # a 3-probe spike moves no median
    assert transitions(decisions) == [(UP, DEGRADED), (DEGRADED, UP)]
    went = next(d.transition for d in decisions if d.transition)
    assert went.cause["rule"] == "latency"
    assert went.cause["ttft_ms_p50"] > 2000 and went.cause["limit"] == 2000
    assert went.cause["slow"] >= went.cause["samples"] // 2


def test_the_total_time_limit_is_judged_like_ttft():
    config = DetectionConfig(failure_threshold=4, degraded_total_ms=3000, window=4, confirm_after=[])
    detector = Detector(config, "openai")
    decisions = [detector.feed(result(OK, i * 60, ttft=300, total=5000)) for i in range(4)]
    assert [d.state for d in decisions] == [UP, DEGRADED, DEGRADED, DEGRADED]  # a median needs half the window
    assert decisions[1].transition.cause == {"rule": "latency", "total_ms_p50": 5000.0, "limit": 3000, "samples": 2,
                                             "slow": 2}


def test_partial_failures_degrade_and_the_rate_must_fall_well_below_the_limit_to_recover():
    config = DetectionConfig(window=10, degraded_error_rate=0.3, confirm_after=[])
    detector = Detector(config, "openai")
    x, o = FAIL, OK
    decisions = feed_all(detector, [o, x, o, o, x, o, o, x, o, o])  # 3 of 10 failed
    assert decisions[-1].state is DEGRADED
    assert decisions[-1].transition.cause == {"rule": "error_rate", "error_rate": 0.3, "limit": 0.3, "window": 10,
                                              "failures": 3, "kinds": {"overloaded": 3}}
    # 2 of 10 is below the limit, but not at the recovery level (0.15): still DEGRADED, no flap.
    more = feed_all(detector, [o, o, o, o, o], start=600)
    assert [d.state for d in more][:3] == [DEGRADED] * 3
    assert more[-1].state is UP  # 1 of 10 by then
    assert more[-1].transition.cause["rule"] == "recovered"


def test_an_outage_is_announced_once_as_down_not_first_as_degraded_seconds_before():
    detector = Detector(DetectionConfig(failure_threshold=4, window=10), "openai")  # 3 failures in 10 would be DEGRADED
    follow(detector, [FAIL, OK] + [OK] * 7)  # one old blip, confirmed away, still in the window
    steps = follow(detector, [FAIL] * 4, start=1000)
    # The second failure makes 3 in 10, but a confirmation is seconds away: it decides.
    assert transitions(d for _, d in steps) == [(UP, DOWN)]


# --- flapping ------------------------------------------------------------------------------------


def test_a_provider_alternating_fail_ok_does_not_alert_on_every_flip():
    detector = Detector(DetectionConfig(), "openai")
    steps = follow(detector, [FAIL, OK] * 50)
    assert len(transitions(d for _, d in steps)) <= 2
    assert steps[-1][1].state is DEGRADED  # partly failing, which is what it is
    assert DOWN not in {d.state for _, d in steps}


def test_a_target_that_keeps_relapsing_must_stay_up_longer_before_it_counts_as_recovered():
    detector = Detector(DetectionConfig(failure_threshold=4, confirm_after=[]), "openai")  # 4 to fail, 2 to recover
    decisions = feed_all(detector, ([FAIL] * 4 + [OK] * 2) * 10)
    # A naive 4/2 state machine would page 10 times; this one: down, up, down again, and it stays down.
    assert transitions(decisions) == [(UP, DOWN), (DOWN, UP), (UP, DOWN)]
    relapse = [d.transition for d in decisions if d.transition][-1]
    assert relapse.cause["relapse"] is True and relapse.cause["success_needed"] == 4
    # Four good results in a row now do it.
    assert feed_all(detector, [OK] * 4, start=10_000)[-1].state is UP


@settings(max_examples=300, deadline=None)
@given(
    kinds=st.lists(st.sampled_from([OK, OK, FAIL, ErrorKind.RATE_LIMITED, ErrorKind.WRONG_ANSWER]), max_size=120),
    confirms=st.lists(st.booleans(), min_size=120, max_size=120),
    failure=st.integers(1, 5),
    success=st.integers(1, 5),
    extra_window=st.integers(0, 8),
    confirm_after=st.sampled_from([[], [1.0], [1.0, 2.0, 3.0]]),
)
def test_no_transition_on_less_evidence_than_the_thresholds(kinds, confirms, failure, success, extra_window,
                                                            confirm_after):
    window = max(2, failure + extra_window)
    config = DetectionConfig(failure_threshold=failure, success_threshold=success, window=window,
                             confirm_after=confirm_after)
    detector = Detector(config, "openai")
    seen: list[Status] = []  # each result on its own
    fresh = 0  # results in the window since it last restarted (the start, or the good run that left DOWN)
    entered_down = None  # index of the result that made it DOWN
    for i, (kind, confirm) in enumerate(zip(kinds, confirms, strict=False)):
        decision = detector.feed(result(kind, i * 10.0), confirm=confirm)
        seen.append(decision.observed)
        fresh += 1
        assert decision.state is detector.state
        tr = decision.transition
        if tr is None:
            continue
        assert tr.from_ is not tr.to
        if tr.to is DOWN:  # DOWN only after failure_threshold DOWN-kind results in a row
            assert len(seen) >= failure and all(s is DOWN for s in seen[-failure:])
            entered_down = i
        if tr.from_ is DOWN:  # out of DOWN only after success_threshold good results, all fed while DOWN
            assert all(s is not DOWN for s in seen[-success:])
            assert entered_down is not None and i - entered_down >= success
            fresh = tr.cause["successes"]
        if tr.to is UP:
            assert all(s is UP for s in seen[-success:])
        if (tr.from_, tr.to) == (UP, DEGRADED):
            if tr.cause["rule"] == "degraded_results":
                assert all(s is not UP for s in seen[-failure:])
            else:  # judged over a full window only
                assert tr.cause["rule"] == "error_rate" and fresh >= config.window


# --- maintenance ---------------------------------------------------------------------------------


def _maintenance(start: float, end: float, targets=None) -> MaintenanceWindow:
    return MaintenanceWindow(start=T0 + timedelta(seconds=start), end=T0 + timedelta(seconds=end), targets=targets,
                             reason="vendor upgrade")


def test_inside_maintenance_the_state_is_tracked_but_nothing_is_announced():
    config = DetectionConfig(failure_threshold=4, confirm_after=[], maintenance=[_maintenance(0, 600)])
    decisions = feed_all(Detector(config, "openai"), [FAIL] * 6 + [OK] * 3)  # all inside the window
    assert [d.state for d in decisions][3:5] == [DOWN, DOWN]
    assert all(d.in_maintenance and d.transition is None and d.confirm_in is None for d in decisions)
    suppressed = [(d.suppressed.from_, d.suppressed.to) for d in decisions if d.suppressed]
    assert suppressed == [(UP, DOWN), (DOWN, UP)]


def test_a_state_reached_during_maintenance_is_announced_when_it_ends():
    config = DetectionConfig(failure_threshold=4, maintenance=[_maintenance(0, 300)])
    decisions = feed_all(Detector(config, "openai"), [FAIL] * 8)  # the outage outlasts the window
    inside, after = decisions[:5], decisions[5]
    assert all(d.transition is None for d in inside) and inside[3].suppressed.to is DOWN
    assert not after.in_maintenance
    tr = after.transition
    assert (tr.from_, tr.to) == (UP, DOWN) and tr.cause["after_maintenance"] is True
    assert tr.cause["failures"] == 4 and tr.since == T0  # the evidence is the same outage's
    assert all(d.transition is None for d in decisions[6:])


def test_maintenance_for_other_targets_changes_nothing():
    config = DetectionConfig(failure_threshold=4, confirm_after=[],
                             maintenance=[_maintenance(0, 600, targets=["anthropic"])])
    decisions = feed_all(Detector(config, "openai"), [FAIL] * 4)
    assert decisions[-1].transition.to is DOWN and not decisions[-1].in_maintenance


# --- corroboration: another region calls the target DOWN ------------------------------------------


def _failing(detector: Detector, n: int, *, start: float = 0.0) -> None:
    """``n`` failed results, a scheduled probe then confirmations, as the scheduler sends them."""
    for i in range(n):
        assert detector.feed(result(FAIL, start + i), confirm=i > 0).transition is None


def test_a_run_of_corroborate_after_failures_goes_down_when_another_region_is_down():
    detector = Detector(DetectionConfig(corroborate_after=3), "openai")  # failure_threshold 5
    _failing(detector, 2)
    assert detector.failing() == 2
    assert detector.corroborate(at=T0 + timedelta(seconds=2), regions=["us"]) is None  # 2 < 3: a blip, maybe
    assert detector.state is UP
    detector.feed(result(FAIL, 2), confirm=True)
    decision = detector.corroborate(at=T0 + timedelta(seconds=3.5), regions=["us", "ap", "us"])
    tr = decision.transition
    assert (tr.from_, tr.to, decision.state) == (UP, DOWN, DOWN)
    assert tr.since == T0 and tr.at == T0 + timedelta(seconds=3.5)  # the evidence began at the first failure
    assert tr.cause == {"rule": "corroborated", "failures": 3, "threshold": 3, "down_in": ["ap", "us"],
                        "kinds": {"overloaded": 3}}
    assert detector.failing() == 0 and decision.confirm_in is None  # DOWN: no more confirmations to send
    assert detector.corroborate(at=T0 + timedelta(seconds=4), regions=["us"]) is None  # DOWN already: nothing new
    # It recovers by its own results, as any DOWN does.
    assert transitions([detector.feed(result(OK, 10 + i), confirm=True) for i in range(2)]) == [(DOWN, UP)]


def test_a_good_result_ends_the_run_and_switched_off_nothing_is_corroborated():
    detector = Detector(DetectionConfig(), "openai")  # corroborate_after 4
    _failing(detector, 4)
    detector.feed(result(OK, 4), confirm=True)
    assert detector.failing() == 0 and detector.corroborate(at=T0 + timedelta(seconds=5), regions=["us"]) is None
    off = Detector(DetectionConfig(corroborate_after=None), "openai")
    _failing(off, 4)
    assert off.corroborate(at=T0 + timedelta(seconds=4), regions=["us"]) is None and off.state is UP


def test_a_corroborated_down_inside_maintenance_is_tracked_not_announced():
    detector = Detector(DetectionConfig(maintenance=[_maintenance(0, 600)]), "openai")
    _failing(detector, 4)
    decision = detector.corroborate(at=T0 + timedelta(seconds=4), regions=["us"])
    assert decision.transition is None and decision.suppressed.to is DOWN and decision.state is DOWN


def test_the_default_is_capped_at_failure_threshold_and_a_larger_one_set_is_refused():
    detector = Detector(DetectionConfig(failure_threshold=2, confirm_after=[]), "openai")
    assert detector.feed(result(FAIL, 0)).transition is None
    assert detector.corroborate(at=T0 + timedelta(seconds=1), regions=["us"]) is None  # 1 < min(4, 2)
    assert problems(failure_threshold=2, corroborate_after=3) == [
        "corroborate_after (3) must not be above failure_threshold (2): it is the shorter run a region needs once "
        "another calls the target DOWN"]
    assert DetectionConfig(failure_threshold=2).corroborate_after == 4  # the default, used as 2


@settings(max_examples=200, deadline=None)
@given(kinds=st.lists(st.sampled_from([OK, FAIL, ErrorKind.RATE_LIMITED]), max_size=12),
       need=st.integers(1, 5))
def test_corroboration_never_goes_down_on_fewer_failures_in_a_row_than_it_asks(kinds, need):
    detector = Detector(DetectionConfig(corroborate_after=need), "openai")
    for i, kind in enumerate(kinds):
        detector.feed(result(kind, i), confirm=i > 0)
    was, run = detector.state, detector.failing()
    decision = detector.corroborate(at=T0 + timedelta(seconds=len(kinds)), regions=["us"])
    if decision is None:
        assert was is DOWN or run < need
        assert detector.state is was
    else:
        assert was is not DOWN and run >= need and decision.transition.cause["failures"] == run
        assert detector.state is DOWN


# --- the detector's contract ---------------------------------------------------------------------


def test_a_detector_restored_as_down_announces_the_recovery():
    detector = Detector(DetectionConfig(confirm_after=[]), "openai", state=DOWN)
    assert transitions(feed_all(detector, [OK, OK])) == [(DOWN, UP)]


def test_feeding_another_targets_result_is_a_bug():
    with pytest.raises(ValueError, match="detector of 'openai' fed a result of 'anthropic'"):
        Detector(DetectionConfig(), "openai").feed(result(OK, 0, target="anthropic"))


# --- the detection section of airisk.yaml --------------------------------------------------------


def problems(**fields) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        DetectionConfig.model_validate(fields)
    return [f"{format_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}".removeprefix(": ")
            for e in caught.value.errors()]


def test_defaults_and_durations_as_people_write_them():
    config = DetectionConfig.model_validate({"confirm_after": ["500ms", "2s", 3]})
    assert config.confirm_after == [0.5, 2.0, 3.0]
    default = DetectionConfig()
    assert (default.failure_threshold, default.success_threshold, default.confirm_after) == (5, 2, [1.0, 1.0, 2.0, 2.0])
    assert default.hedge_after == 5.0
    assert (default.window, default.degraded_error_rate, default.recover_rate) == (20, 0.3, 0.15)
    assert default.degraded_ttft_ms is None and default.maintenance == []


def test_validation_messages_name_the_problem():
    assert problems(window=3, failure_threshold=4) == [
        "window (3) must be at least failure_threshold (4): the window holds the failures it judges"]
    assert problems(recover_error_rate=0.3) == ["recover_error_rate (0.3) must be below degraded_error_rate (0.3)"]
    assert problems(degraded_ttft_ms=5000, degraded_total_ms=2000) == [
        "degraded_ttft_ms (5000) must not be above degraded_total_ms (2000): the first token never comes after "
        "the end"]
    assert problems(confirm_after=["2 sec"]) == ['confirm_after[0]: "2 sec" is not a duration (use e.g. 500ms, '
                                                 '30s, 5m, 1h, 30d)']
    assert problems(failure_threshold=0) == ["failure_threshold: Input should be greater than or equal to 1"]
    assert problems(degraded_error_rate=0) == ["degraded_error_rate: Input should be greater than 0"]
    assert problems(thresold=3)[0].startswith("thresold: Extra inputs are not permitted")


def test_maintenance_windows_need_zoned_times_in_order():
    assert problems(maintenance=[{"start": "2025-03-01T02:00:00", "end": "2025-03-01T04:00:00Z"}]) == [
        "maintenance[0].start: needs a time zone, e.g. 2025-03-01T02:00:00Z or 2025-03-01T03:00:00+01:00"]
    assert problems(maintenance=[{"start": "2025-03-01T04:00:00Z", "end": "2025-03-01T03:00:00+01:00"}]) == [
        "maintenance[0]: end (2025-03-01T02:00:00Z) must be after start (2025-03-01T04:00:00Z)"]
    window = MaintenanceWindow.model_validate({"start": "2025-03-01T03:00:00+01:00", "end": "2025-03-01T04:00:00Z"})
    assert window.start == datetime(2025, 3, 1, 2, tzinfo=UTC)  # stored as UTC
    assert window.covers("openai", datetime(2025, 3, 1, 3, 59, tzinfo=UTC))
    assert not window.covers("openai", datetime(2025, 3, 1, 4, 0, tzinfo=UTC))  # the end is exclusive


def test_maintenance_naming_an_unknown_target_is_reported_for_the_loader():
    config = DetectionConfig.model_validate({"maintenance": [
        {"start": "2025-03-01T02:00:00Z", "end": "2025-03-01T04:00:00Z", "targets": ["openai", "opneai"]}]})
    assert config.target_problems({"openai", "anthropic"}) == [
        (("detection", "maintenance", 0, "targets", 1), "no target is named 'opneai' (targets: anthropic, openai)")]


_odd_ms = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12))


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(list(ErrorKind)), _odd_ms, _odd_ms, st.booleans()), min_size=1,
                max_size=30))
def test_any_figures_a_result_carries_never_stop_the_detector(steps):
    """Times no real probe takes (NaN, infinite, negative, years) are read as no time: the detector
    still decides on every result (a NaN total raised in timedelta before), and hedge_after stays
    a usable number of seconds."""
    detector = Detector(DetectionConfig(hedge_after=1.0, confirm_after=[0.5, 0.5]), "openai")
    at = T0
    for kind, ttft, total, confirm in steps:
        at += timedelta(seconds=30)
        odd = ProbeResult(target="openai", provider="openai", model="m", at=at, status=kind.status,
                          error_kind=kind, ttft_ms=ttft, total_ms=total)
        decision = detector.feed(odd, confirm=confirm)
        assert decision.state in Status
        if decision.transition is not None:
            assert decision.transition.at >= at
        wait = detector.hedge_after()
        assert wait is not None and 1.0 <= wait < 86_400 * 3
        assert detector.hedges(at=at) >= 0
