"""Per-feature SLO burn alerts (monitor/alerts/burn.py): from real rows on SQLite and PostgreSQL, and the
burn-rate arithmetic under hypothesis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from monitor.alerts import burn
from monitor.alerts.burn import PAIRS, Pair, burn_rate, feature_series, feature_slo_events, pairs_for, readings
from monitor.alerts.outbox import enqueue
from monitor.config import parse_config
from tests.monitor.conftest import T0
from tests.monitor.test_risk import _probes, _verify, store_eval

CONFIG = """
targets:
  - {provider: anthropic, name: claude}
  - {provider: openai, name: gpt}
local_model: {}
features:
  chat:
    criticality: critical
    slo: {objective: 0.999}
    min_quality: 0.8
    chain: [{backend: claude}, {backend: local}]
  tags:
    slo: {objective: 0.99, window: 30d}
    chain: [{backend: gpt}]
  search:
    chain: [{backend: gpt}]
alerts:
  channels: [{name: oncall, type: webhook, url_env: ONCALL_URL}, {name: team, type: webhook, url_env: TEAM_URL}]
  rules:
    - {rule: feature_slo, channels: [oncall], criticality: [critical, high]}
    - {rule: feature_slo, channels: [team]}
"""
MIN = timedelta(minutes=1)


@pytest.fixture
def config():
    return parse_config(CONFIG, environ={})


def up_then(session: Session, target: str, pattern: list[str], *, start=T0) -> None:
    """One scheduled probe a minute from ``start``: "u" up (fast), "d" down."""
    _probes(session, target, [("up", 200, 600) if c == "u" else ("down", None, 50) for c in pattern], start=start)


def evaluate(session, config, now, burning=None):
    return feature_slo_events(session=session, config=config, now=now, burning=burning or {})


# --- From the store ---


def test_a_fast_burn_pages_within_the_short_window_and_resolves_once_it_stops(session: Session, config):
    up_then(session, "claude", ["u"] * 120 + ["d"] * 10 + ["u"] * 20)  # down from T0+120 min for 10 minutes
    up_then(session, "local", ["u"] * 150)  # up, but unverified: no drill, no eval, so it does not count
    quiet, state = evaluate(session, config, T0 + 119 * MIN + timedelta(seconds=30))
    assert quiet == [] and state == {}
    events, state = evaluate(session, config, T0 + 120 * MIN + timedelta(seconds=30))  # the first down minute
    assert sorted(e.channel for e in events) == ["oncall", "team"]  # the critical-only rule and the catch-all
    page = events[0]
    assert (page.rule, page.action, page.severity, page.dedup_key) == (
        "feature_slo", "trigger", "critical", "airisk-slo-chat-page")
    assert page.title.startswith("chat (critical) is burning its error budget at 16.7x over 1h and 200.0x over 5m")
    assert "page at 14.4x; SLO 99.900% over 30d" in page.title and page.provider == "anthropic"
    assert page.details["chain"][1].startswith("local: unverified: no drill showed it answering")
    assert {r["pair"]: r["firing"] for r in page.details["pairs"]} == {"1h/5m": True, "6h/30m": False}
    assert state == {("chat", "page"): T0 + 120 * MIN}
    # Still burning: nothing new, the state carried.
    again, state = evaluate(session, config, T0 + 125 * MIN, state)
    assert again == [] and ("chat", "page") in state
    # No word for the last 5 minutes (probes stopped, say): that is no sign of recovery.
    assert evaluate(session, config, T0 + 160 * MIN, state)[0] == []
    # Up again from T0+130: once the 5-minute window is clean (the long one still over), it resolves.
    still, state = evaluate(session, config, T0 + 133 * MIN + timedelta(seconds=30), state)
    assert still == []
    resolved, state = evaluate(session, config, T0 + 134 * MIN + timedelta(seconds=30), state)
    assert {(e.action, e.severity, e.dedup_key) for e in resolved} == {("resolve", "info", "airisk-slo-chat-page")}
    assert resolved[0].event_key == "feature_slo:chat:page@20250303T1200/resolved:oncall"
    assert page.event_key == "feature_slo:chat:page@20250303T1200:oncall" and state == {}


def test_the_outbox_carries_an_episode_across_restarts_and_monitors(session: Session, config):
    up_then(session, "claude", ["u"] * 120 + ["d"] * 10 + ["u"] * 20)
    events, _ = evaluate(session, config, T0 + 121 * MIN)
    enqueue(session=session, events=events, now=T0 + 121 * MIN)
    session.commit()
    # A monitor without the state (restarted, or another region's) does not page again...
    assert evaluate(session, config, T0 + 123 * MIN)[0] == []
    # ...and resolves the same episode (same event keys: the outbox keeps one of each).
    resolved, _ = evaluate(session, config, T0 + 140 * MIN)
    assert [e.event_key for e in resolved] == ["feature_slo:chat:page@20250303T1201/resolved:oncall",
                                               "feature_slo:chat:page@20250303T1201/resolved:team"]


def test_a_slow_burn_opens_a_ticket_not_a_page(session: Session, config):
    # gpt down one minute in 25 (4% against the 1% budget of 99%: 4x) for 26 hours.
    up_then(session, "gpt", (["u"] * 24 + ["d"]) * (26 * 60 // 25))
    now = T0 + (26 * 60 // 25) * 25 * MIN - timedelta(seconds=30)
    events, state = evaluate(session, config, now)
    assert {(e.channel, e.action, e.severity, e.dedup_key) for e in events} == {
        ("team", "trigger", "warning", "airisk-slo-tags-ticket")}  # tags is medium: not for the critical rule
    (ticket,) = events
    pairs = {r["pair"]: r for r in ticket.details["pairs"]}
    assert pairs["1d/2h"]["firing"] and pairs["1d/2h"]["threshold"] == 3
    assert 3.5 < pairs["1d/2h"]["burn_rate_long"] < 4.5
    assert pairs["3d/6h"]["burn_rate_long"] is None  # 26 hours measured are not yet half of 3 days
    assert ("tags", "page") not in state and ("tags", "ticket") in state


def test_a_brief_blip_fires_nothing_though_its_short_window_alone_would(session: Session, config):
    up_then(session, "gpt", ["u"] * 420 + ["d"] + ["u"] * 2)  # 7 hours up, one minute down
    now = T0 + 422 * MIN + timedelta(seconds=30)
    assert evaluate(session, config, now)[0] == []
    series, _ = feature_series(session=session, config=config, feature="tags", now=now, minutes=60)
    fast = readings(series, objective=0.99, slo_window=30 * 86400.0)[0]
    assert fast.short_rate > fast.threshold > fast.long_rate and not fast.firing


def _claude_down_for_ten_minutes(session: Session) -> None:
    up_then(session, "claude", ["u"] * 120 + ["d"] * 10)
    up_then(session, "local", ["u"] * 130)
    _verify(session, feature="chat", faulted=["anthropic"], answered_by=["local"], ok=1.0, answered=1.0,
            at=T0 - timedelta(days=1))


def test_a_fallback_that_is_up_keeps_the_feature_available(session: Session, config):
    _claude_down_for_ten_minutes(session)
    store_eval(session, feature="chat", backend="local", passed=200, n=200, at=T0 - timedelta(days=1))
    now = T0 + 129 * MIN + timedelta(seconds=30)
    assert evaluate(session, config, now)[0] == []
    series, said = feature_series(session=session, config=config, feature="chat", now=now, minutes=60)
    assert said[1].startswith("local: verified ")
    # Each down minute loses only what local's answers are short of (quality: the interval's lower bound).
    assert series[-1] == pytest.approx(1 - 0.9812, abs=1e-3) and series[-11] == 0


def test_a_fallback_below_min_quality_does_not(session: Session, config):
    _claude_down_for_ten_minutes(session)
    store_eval(session, feature="chat", backend="local", passed=150, n=200, at=T0 - timedelta(days=1))
    events, _ = evaluate(session, config, T0 + 129 * MIN + timedelta(seconds=30))
    assert {e.severity for e in events} == {"critical"}
    assert "below min_quality 0.8: counted as absent" in events[0].details["chain"][1]


def test_a_degraded_mode_keeps_part_of_the_feature(session: Session):
    config = parse_config(CONFIG.replace("chain: [{backend: gpt}]\n  search",
                                         "chain: [{backend: gpt}, {degraded: heuristic, quality: 0.4}]\n  search"),
                          environ={})
    up_then(session, "gpt", ["u"] * 60 + ["d"] * 5)
    _verify(session, feature="tags", faulted=["openai"], answered_by=[], ok=0.0, answered=1.0,
            at=T0 - timedelta(days=1))
    series, said = feature_series(session=session, config=config, feature="tags", now=T0 + 64 * MIN, minutes=10)
    assert said[1].startswith("degraded:heuristic: verified")
    assert series[-5:] == pytest.approx([0.6] * 5) and series[0] == 0


def test_minutes_without_a_probe_hold_the_last_word_for_an_interval(session: Session, config):
    _probes(session, "gpt", [("up", 200, 600), ("down", None, 50)] * 3, step=timedelta(minutes=3))
    series, _ = feature_series(session=session, config=config, feature="tags", now=T0 + 17 * MIN, minutes=18)
    # One probe every 3 minutes with the default 60 s interval: the minute after each probe keeps its word.
    assert series == [0, 0, None, 1, 1, None] * 3


def test_only_rules_that_cover_a_feature_alert_it(session: Session):
    config = parse_config(CONFIG.replace("{rule: feature_slo, channels: [team]}",
                                         "{rule: feature_slo, channels: [team], targets: [gpt]}"), environ={})
    up_then(session, "claude", ["u"] * 60 + ["d"] * 3)
    events, _ = evaluate(session, config, T0 + 62 * MIN)
    assert [e.channel for e in events] == ["oncall"]  # the team rule names gpt, which chat does not use


def test_regions_count_together_and_maintenance_holds_the_state(session: Session):
    maintenance = ("  maintenance: [{start: '2025-03-03T11:00:00Z', end: '2025-03-03T12:00:00Z', "
                   "targets: [claude]}]\n")
    config = parse_config(CONFIG.replace("  rules:\n", maintenance + "  rules:\n"), environ={})
    up_then(session, "claude", ["u"] * 60 + ["d"] * 5)  # down from T0+60 in eu...
    _probes(session, "claude", [("up", 200, 600)] * 65, region="us")  # ...and up in us all along
    series, _ = feature_series(session=session, config=config, feature="chat", now=T0 + 64 * MIN, minutes=10)
    assert series[-5:] == [0.5] * 5 and series[:5] == [0.0] * 5
    # Inside the window (claude, the primary, is being worked on) nothing fires; after it, the burn pages.
    assert evaluate(session, config, T0 + 64 * MIN)[0] == []
    for region in ("eu", "us"):  # back up after the window's first 5 minutes, then down everywhere at T0+120
        _probes(session, "claude", [("up", 200, 600)] * 55 + [("down", None, 50)] * 5, start=T0 + 65 * MIN,
                region=region)
    assert {e.severity for e in evaluate(session, config, T0 + 124 * MIN)[0]} == {"critical"}


# --- The arithmetic ---


def test_thresholds_follow_the_workbook_and_scale_with_the_slo_window():
    month = 30 * 86400.0
    assert [(p.cls, p.name, round(p.threshold(month), 6)) for p in PAIRS] == [
        ("page", "1h/5m", 14.4), ("page", "6h/30m", 6.0), ("ticket", "1d/2h", 3.0), ("ticket", "3d/6h", 1.0)]
    week = 7 * 86400.0
    # 10% of a week's budget in a day or in 3 days is a burn of 0.7 or 0.23: within budget, so 1 at least.
    assert [round(p.threshold(week), 4) for p in pairs_for(week)] == [3.36, 1.4, 1.0, 1.0]
    assert [p.threshold(3600.0) for p in pairs_for(3600.0)] == [1.0]
    assert [p.name for p in pairs_for(86400.0)] == ["1h/5m", "6h/30m", "1d/2h"]  # 3 days do not fit in one


unavailability = st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=1, max_size=400)


@settings(max_examples=300, deadline=None)
@given(series=unavailability, objective=st.floats(0.5, 0.99999), minutes=st.integers(1, 500))
def test_burn_rates_are_never_negative(series, objective, minutes):
    rate = burn_rate(series, minutes, objective)
    assert rate is None or rate >= 0
    for r in readings(series, objective=objective, slo_window=30 * 86400.0):
        assert all(x is None or x >= 0 for x in (r.long_rate, r.short_rate))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), series=unavailability, objective=st.floats(0.5, 0.99999))
def test_burn_rates_are_monotone_in_failures(data, series, objective):
    worse = [None if u is None else data.draw(st.floats(u, 1)) for u in series]
    for before, after in zip(readings(series, objective=objective, slo_window=30 * 86400.0),
                             readings(worse, objective=objective, slo_window=30 * 86400.0), strict=True):
        for a, b in ((before.long_rate, after.long_rate), (before.short_rate, after.short_rate)):
            assert (a is None) == (b is None)
            assert a is None or b >= a - 1e-12
        assert not before.firing or after.firing  # more failures never silence a pair


@settings(max_examples=300, deadline=None)
@given(series=unavailability, objective=st.floats(0.9, 0.9999), window=st.sampled_from([7, 28, 30, 90]),
       bad=st.floats(0, 1))
def test_the_short_window_alone_never_fires(series, objective, window, bad):
    slo_window = window * 86400.0
    for pair in pairs_for(slo_window):
        short = burn._minutes(pair.short)
        # Whatever the short window holds: the pair fires only with its long window over the threshold too.
        spiked = list(series) + [bad] * short
        (r,) = readings(spiked, objective=objective, slo_window=slo_window, pairs=[pair])
        assert r.firing == (r.long_rate is not None and r.short_rate is not None
                            and r.long_rate > r.threshold and r.short_rate > r.threshold)
        if r.long_rate is not None and r.long_rate <= r.threshold:
            assert not r.firing


def test_a_pair_needs_both_windows():
    pair = Pair("page", 3600.0, 300.0, 0.02)
    blip = [0.0] * 55 + [1.0] + [0.0] * 4  # one bad minute: 1h at 1.67x... of a 99% SLO
    (r,) = readings(blip, objective=0.99, slo_window=30 * 86400.0, pairs=[pair])
    assert r.short_rate == pytest.approx(20.0) and r.long_rate == pytest.approx(1 / 60 / 0.01) and not r.firing
    (young,) = readings([0.0, 1.0], objective=0.99, slo_window=30 * 86400.0, pairs=[pair])
    assert young.long_rate is None and not young.firing  # two minutes of history are no hour
