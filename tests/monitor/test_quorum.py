"""`monitor.quorum`: the verdict over every region's view of one target (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.quorum import NONE, Sighting, Verdict, needed, verdict

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REGIONS = ["eu", "us", "ap", "sa", "af"]


def seen(region: str, state: str, minute: float = 0) -> Sighting:
    return Sighting(region, state, T0 + timedelta(minutes=minute))


# -- needed ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("alive", "majority"), [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_majority_is_more_than_half_of_the_alive_regions(alive, majority):
    assert needed("majority", alive) == majority


def test_a_quorum_above_the_alive_regions_asks_every_alive_region_and_never_fewer_than_one():
    assert needed(3, 3) == 3
    assert needed(3, 2) == 2  # one of three monitors dead: the two left must agree, and can
    assert needed(3, 1) == 1  # a lone survivor speaks alone, as a single monitor always has
    assert needed(2, 0) == 1
    assert needed(1, 5) == 1


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "most"])
def test_a_quorum_that_is_no_count_is_refused(bad):
    with pytest.raises(ValueError, match="quorum must be a positive integer or 'majority'"):
        needed(bad, 3)


def test_a_negative_region_count_is_refused():
    with pytest.raises(ValueError, match="alive_regions must be 0 or more"):
        needed(1, -1)


def test_a_sighting_with_an_unknown_state_is_refused_naming_its_region():
    with pytest.raises(ValueError, match="sighting of region 'eu': state must be up, degraded or down, got 'DOWN'"):
        Sighting("eu", "DOWN", T0)


# -- verdict, by example -----------------------------------------------------------------------------

def test_two_of_three_down_is_a_global_down_since_the_second_joined():
    v = verdict([seen("eu", "down", 1), seen("us", "down", 3), seen("ap", "up")], quorum=2, alive=["eu", "us", "ap"])
    assert v == Verdict("down", "global", ("eu", "us"), T0 + timedelta(minutes=3))


def test_one_of_three_down_is_regional_and_names_its_region():
    v = verdict([seen("eu", "down", 1), seen("us", "up"), seen("ap", "up")], quorum=2, alive=["eu", "us", "ap"])
    assert v == Verdict("down", "regional", ("eu",), T0 + timedelta(minutes=1))


def test_down_counts_towards_degraded():
    v = verdict([seen("eu", "down", 1), seen("us", "degraded", 2), seen("ap", "up")], quorum=2,
                alive=["eu", "us", "ap"])
    assert v == Verdict("degraded", "global", ("eu", "us"), T0 + timedelta(minutes=2))


def test_a_dead_region_neither_pages_nor_keeps_an_outage_below_the_quorum():
    sightings = [seen("eu", "down"), seen("us", "down"), seen("ap", "up")]
    # us died while it saw the target down: its last word does not make the outage global...
    assert verdict(sightings, quorum=2, alive=["eu", "ap"]).scope == "regional"
    # ...and quorum 3 with ap dead: the two left agree, so it pages (capped at the alive regions).
    assert verdict(sightings, quorum=3, alive=["eu", "us"]).scope == "global"
    assert verdict(sightings, quorum=3, alive=["eu", "us", "ap"]).scope == "regional"


def test_an_alive_region_without_a_sighting_counts_as_not_seeing_trouble():
    assert verdict([seen("eu", "down")], quorum="majority", alive=["eu", "us", "ap"]).scope == "regional"
    assert verdict([seen("eu", "down")], quorum="majority", alive=["eu"]).scope == "global"


def test_nobody_alive_or_everyone_up_is_no_incident():
    assert verdict([seen("eu", "down")], quorum=1, alive=[]) is NONE
    assert verdict([seen("eu", "up"), seen("us", "up")], quorum=1, alive=["eu", "us"]) is NONE
    assert Verdict("up", "none", (), None) == NONE


def test_a_region_seen_twice_counts_once_at_its_worst():
    v = verdict([seen("eu", "up"), seen("eu", "down", 2), seen("eu", "down", 1)], quorum=2, alive=["eu", "us"])
    assert v == Verdict("down", "regional", ("eu",), T0 + timedelta(minutes=1))


# -- verdict, properties -------------------------------------------------------------------------------

states = st.sampled_from(["up", "degraded", "down"])
quorums = st.one_of(st.integers(1, 7), st.just("majority"))


@st.composite
def views(draw):
    """Some regions' sightings (each region once) and which of them (and of others) are alive."""
    regions = draw(st.lists(st.sampled_from(REGIONS), unique=True, max_size=len(REGIONS)))
    sightings = [Sighting(r, draw(states), T0 + timedelta(seconds=draw(st.integers(0, 3600)))) for r in regions]
    alive = draw(st.lists(st.sampled_from(REGIONS), unique=True, max_size=len(REGIONS)))
    return sightings, alive


@given(views(), quorums, st.data())
def test_more_regions_down_never_makes_the_verdict_less_down(view, quorum, data):
    sightings, alive = view
    if not sightings:
        return
    i = data.draw(st.integers(0, len(sightings) - 1))
    worse = [*sightings[:i], Sighting(sightings[i].region, "down", sightings[i].since), *sightings[i + 1:]]
    assert verdict(worse, quorum=quorum, alive=alive).rank >= verdict(sightings, quorum=quorum, alive=alive).rank


@given(views(), quorums, st.data())
def test_a_new_alive_region_seeing_it_down_never_makes_the_verdict_less_down(view, quorum, data):
    sightings, alive = view
    absent = [r for r in REGIONS if r not in alive and r not in {s.region for s in sightings}]
    if not absent:
        return
    region = data.draw(st.sampled_from(absent))
    more = verdict([*sightings, Sighting(region, "down", T0)], quorum=quorum, alive=[*alive, region])
    assert more.rank >= verdict(sightings, quorum=quorum, alive=alive).rank


@given(views(), quorums, st.lists(states, max_size=3))
def test_dead_regions_never_change_the_verdict(view, quorum, dead_states):
    sightings, alive = view
    live = [s for s in sightings if s.region in alive]
    dead = [Sighting(f"dead{i}", state, T0) for i, state in enumerate(dead_states)]
    assert verdict(sightings + dead, quorum=quorum, alive=alive) == verdict(live, quorum=quorum, alive=alive)


@given(views(), quorums)
def test_a_verdict_is_made_of_alive_regions_that_hold_it(view, quorum):
    sightings, alive = view
    v = verdict(sightings, quorum=quorum, alive=alive)
    held = {s.region: s.state for s in sightings if s.region in alive}
    assert set(v.regions) <= set(held) and list(v.regions) == sorted(v.regions)
    rank = {"up": 0, "degraded": 1, "down": 2}
    if v.scope == "global":
        assert len(v.regions) >= needed(quorum, len(set(alive)))
        assert all(rank[held[r]] >= rank[v.state] for r in v.regions)
        # every alive region holding the verdict's state (or worse) is named
        assert set(v.regions) == {r for r, s in held.items() if rank[s] >= rank[v.state]}
        assert v.since is not None and v.since >= min(s.since for s in sightings if s.region in v.regions)
    elif v.scope == "regional":
        assert v.state == max((held[r] for r in v.regions), key=rank.__getitem__)
        # every region seeing trouble is named, and they are too few for the quorum
        assert set(v.regions) == {r for r, s in held.items() if s != "up"}
        assert 0 < len(v.regions) < needed(quorum, len(set(alive)))
    else:
        assert v == NONE and all(s == "up" for s in held.values())


@given(views(), quorums)
def test_the_verdict_does_not_depend_on_the_order_of_the_sightings(view, quorum):
    sightings, alive = view
    assert verdict(sightings, quorum=quorum, alive=alive) == verdict(sightings[::-1], quorum=quorum,
                                                                      alive=list(reversed(alive)))


@given(views())
def test_with_a_quorum_of_one_any_alive_region_in_trouble_makes_it_global(view):
    sightings, alive = view
    held = [s for s in sightings if s.region in alive]
    v = verdict(sightings, quorum=1, alive=alive)
    worst = max((s.state for s in held), key=["up", "degraded", "down"].index, default="up")
    assert (v.scope, v.state) == (("none", "up") if worst == "up" else ("global", worst))


@given(views())
def test_majority_and_every_alive_region_agree_with_their_counts(view):
    sightings, alive = view
    n = len(set(alive))
    assert verdict(sightings, quorum="majority", alive=alive) == verdict(sightings, quorum=n // 2 + 1, alive=alive)
    assert verdict(sightings, quorum=100, alive=alive) == verdict(sightings, quorum=max(n, 1), alive=alive)


# -- the config that sets it ---------------------------------------------------------------------------

def _parse(quorum: str):
    from monitor.config import parse_config

    return parse_config(f"targets:\n  - provider: openai\ndetection: {{quorum: {quorum}}}\n", environ={})


@pytest.mark.parametrize("text", ["0", "101", "most", "true", "[2]", "2.5", "''"])
def test_a_bad_quorum_is_one_line_naming_the_field(text):
    from monitor.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        _parse(text)
    message = str(caught.value)
    assert message.startswith("<string>:3: detection.quorum: must be a number of regions from 1 to 100, or "
                              '"majority"; got ') and "\n" not in message


@given(st.one_of(st.integers(-5, 120), st.text(max_size=12), st.booleans(), st.floats(allow_nan=False)))
def test_any_quorum_in_the_file_is_taken_as_written_or_refused_in_one_line(value):
    import json

    from monitor.config import ConfigError

    try:
        quorum = _parse(json.dumps(value)).detection.quorum
    except ConfigError as exc:
        assert "detection.quorum: must be a number of regions" in str(exc) and "\n" not in str(exc)
        return
    assert quorum == "majority" or (isinstance(quorum, int) and 1 <= quorum <= 100 and quorum == value)
