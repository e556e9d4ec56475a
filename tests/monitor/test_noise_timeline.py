"""The alert-noise benchmark's world (bench/noise_timeline.py): the same seed builds the same world,
and what it says happened is what its probes show."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.alert_noise import score
from bench.noise_replay import Baseline, Quorum, replay
from bench.noise_timeline import (
    DEATH_LEAD_S,
    DEATH_SECONDS,
    DYING,
    FAULTY,
    INTERVAL,
    ONSET_JITTER,
    QUIET_MARGIN,
    REGIONS,
    TARGETS,
    Death,
    Fault,
    Timeline,
    build,
    load_provider_table,
)
from monitor.config.detection import DetectionConfig
from probes.result import ErrorKind


@pytest.fixture(scope="module")
def world():
    return build(3, days=10)


def _inside(a: float, b: float) -> list[float]:
    """A few probe start times inside [a, b): its start, its middle, just before its end."""
    return [a, (a + b) / 2, max(a, b - 0.01)]


def test_same_seed_same_world():
    a, b = build(11, days=4), build(11, days=4)
    assert a.faults == b.faults
    assert a.death == b.death
    for region in REGIONS:
        for target in TARGETS:
            assert a.base_times(region, target) == b.base_times(region, target)
        assert a.heartbeat_times(region, 60) == b.heartbeat_times(region, 60)
    times = [17.5, 3600.25, 86_400.0 + 0.125, a.faults[0].start + 0.5]
    assert [a.probe(r, t, s) for r in REGIONS for t in TARGETS for s in times] == \
           [b.probe(r, t, s) for r in REGIONS for t in TARGETS for s in times]


def test_another_seed_another_world():
    a, b = build(11, days=4), build(12, days=4)
    assert a.faults != b.faults
    assert a.base_times("us-east", "openai-chat") != b.base_times("us-east", "openai-chat")


def test_global_outages_are_seen_everywhere_within_the_jitter_and_fail_every_probe(world):
    outages = world.of_kind("global")
    assert outages, "ten days with no global outage: the seed or the table changed"
    for o in outages:
        assert o.regions == set(REGIONS)
        assert o.targets == {t for t, p in TARGETS.items() if p == o.provider}
        for region, a, b in o.windows:
            assert o.start <= a <= o.start + ONSET_JITTER and b <= o.end <= b + ONSET_JITTER
            for target in o.targets:
                for t in _inside(a, b):
                    result = world.probe(region, target, t)
                    expected = ErrorKind.FIRST_TOKEN_TIMEOUT if o.hang else o.error
                    assert result.error_kind is expected, (region, target, t, o)
                    assert world.fault_at(region, target, t) is o


def test_global_outage_lengths_come_from_the_providers_real_table(world):
    for o in world.of_kind("global"):
        durations, _ = load_provider_table(o.provider)
        for _, a, b in o.windows:
            assert any(abs((b - a) - d) <= ONSET_JITTER for d in durations), (o.provider, b - a)


def test_regional_faults_stay_in_their_region_and_away_from_global_outages(world):
    regional = [f for f in world.faults if f.kind != "global"]
    assert {f.kind for f in regional} == {"regional", "blip"}
    for f in regional:
        assert f.regions == {FAULTY}
        for o in world.of_kind("global"):
            if o.targets & f.targets:
                assert f.end + QUIET_MARGIN < o.start or f.start - QUIET_MARGIN > o.end
        for target in f.targets:
            for t in _inside(f.start, f.end):
                assert world.probe(FAULTY, target, t).error_kind is f.error
                for other in set(REGIONS) - {FAULTY}:
                    assert world.fault_at(other, target, t) is None
    # The blips are what they say: connection resets, a few seconds long, every target of the region.
    blips = world.of_kind("blip")
    assert all(b.error is ErrorKind.CONNECTION_RESET and b.targets == set(TARGETS) and 1 <= b.end - b.start <= 60
               for b in blips)


def test_outside_every_fault_only_the_background_noise_fails(world):
    failed = total = 0
    for region in REGIONS:
        for target in TARGETS:
            for t in world.base_times(region, target)[::13]:
                if world.fault_at(region, target, t) is None:
                    total += 1
                    failed += world.probe(region, target, t).error_kind is not ErrorKind.OK
    assert total > 5_000
    assert 0.01 < failed / total < 0.03  # NOISE_RATE is 2%


def test_the_dead_monitor_is_silent_for_its_hour_and_covers_a_global_outage(world):
    d = world.death
    assert d.region == DYING and d.end - d.start == pytest.approx(DEATH_SECONDS)
    assert d.covers is not None and d.covers.kind == "global"
    assert DEATH_LEAD_S[0] <= d.covers.start - d.start <= DEATH_LEAD_S[1]
    for target in TARGETS:
        times = world.base_times(DYING, target)
        assert not [t for t in times if d.start <= t < d.end]
        assert next(t for t in times if t >= d.end) < d.end + INTERVAL + 1  # back within an interval of restarting
        for region in set(REGIONS) - {DYING}:  # the others go on probing through it
            assert [t for t in world.base_times(region, target) if d.start <= t < d.end]
    beats = world.heartbeat_times(DYING, 60)
    assert not [t for t in beats if d.start <= t < d.end] and d.end in beats
    assert not world.alive(DYING, d.start) and world.alive(DYING, d.end) and world.alive("ap-south", d.start)


def test_days_must_be_positive():
    for bad in (0, -1, math.nan):
        with pytest.raises(ValueError, match="days: must be above 0"):
            build(1, days=bad)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), days=st.floats(min_value=0.25, max_value=6))
def test_any_seed_gives_a_consistent_world(seed, days):
    w = build(seed, days=days)
    assert w.horizon == days * 86_400
    assert w.faults == sorted(w.faults, key=lambda f: (f.start, f.kind, f.provider))
    for f in w.faults:
        assert f.start < f.end and f.kind in ("global", "regional", "blip")
        assert all(f.start <= a < b <= f.end for _, a, b in f.windows)
    # No target ever suffers two faults at once in one region: the truth is never ambiguous.
    for region in REGIONS:
        for target in TARGETS:
            spans = sorted(f.window(region) for f in w.faults
                           if target in f.targets and region in f.regions)
            assert all(b <= c for (_, b), (c, _) in itertools.pairwise(spans))
    d = w.death
    assert d is not None and 0 <= d.start < d.end and d.end - d.start == pytest.approx(DEATH_SECONDS)
    for region in REGIONS:
        times = w.base_times(region, "openai-chat")
        assert times == sorted(times) and all(0 <= t < w.horizon for t in times)


# --- the bench over a world written by hand: what each pipeline pages ------------------------------


def _outage(provider: str, start: float, end: float, regions=REGIONS, kind: str = "global",
            error: ErrorKind = ErrorKind.OVERLOADED) -> Fault:
    targets = frozenset(t for t, p in TARGETS.items() if p == provider)
    windows = tuple((r, start + i, end + i) for i, r in enumerate(regions))  # 1 s later in each region
    return Fault(kind, start, max(b for _, _, b in windows), targets, windows, error, provider=provider)


def _run(faults: list[Fault], death: Death | None = None):
    world = Timeline(5, 3 / 24, 3 * 3600.0, sorted(faults, key=lambda f: f.start), death)
    detection = DetectionConfig(quorum=2)
    pipelines = [Baseline(), Quorum(2, detection), Quorum(1, detection)]
    replay(world, detection, pipelines, heartbeat_every=60.0)
    return world, [score(world, p) for p in pipelines]


def test_one_global_outage_pages_three_times_today_and_once_with_the_quorum():
    outage = _outage("openai", 1800, 2400)
    regional = _outage("anthropic", 5000, 5400, regions=(FAULTY,), kind="regional",
                       error=ErrorKind.CONNECT_TIMEOUT)
    _, (base, two, one) = _run([outage, regional])
    assert (base.pages_global, two.pages_global, one.pages_global) == (3, 1, 1)
    assert (base.pages_regional, two.pages_regional, one.pages_regional) == (1, 0, 1)
    assert base.pages_false == two.pages_false == one.pages_false == 0
    # Quorum 2 waits for a second region; quorum 1 pages with the first, as the first region did alone.
    assert one.ttp == base.ttp and two.ttp[0] > one.ttp[0]
    assert 10 <= one.ttp[0] <= 90  # the group window, then within about an interval and a confirmation run
    assert two.vantage_pages == one.vantage_pages == base.vantage_pages == 0


def test_a_dead_monitor_is_one_vantage_page_and_the_survivors_still_page_the_outage_once():
    outage = _outage("anthropic", 2400, 3000)
    death = Death(DYING, 1200, 1200 + DEATH_SECONDS, outage)
    _, (base, two, one) = _run([outage], death)
    assert two.vantage_pages == 1 and two.deaths == 1
    assert two.pages_global == 1 and two.death_outages == 1 and two.death_outage_paged == 1
    assert base.pages_global == 2 and one.pages_global == 1  # today: the two live regions, each its own page
    assert two.pages_false == base.pages_false == 0
