"""An AI fallback counts only as far as it is proven: quality, min_quality, capacity against traffic.

The arithmetic by hand first, then the peak-rate query of the proxy log, then the whole chain from
real rows (probes, a drill, an eval run, a capacity search, the proxy log) on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from monitor.config import parse_config
from monitor.quality.figures import CapacityFigure
from monitor.quality.stats import wilson
from monitor.risk import FeatureInput, assess, score_features, what_if
from monitor.risk.grade import MONTH_MINUTES
from monitor.store.models import ProxyRequestRow
from monitor.store.proxylog import peak_rates, write_proxy_requests
from monitor.store.quality import record_capacity
from tests.monitor.conftest import T0
from tests.monitor.test_risk import _probes, _verify, backend, capacity, degraded, evaluated, store_eval

L27 = wilson(27, 30)[0]  # 0.7438


def chat(*fallbacks, **kw) -> FeatureInput:
    return FeatureInput("chat", (backend("anthropic", 0.99), *fallbacks), **kw)


def local(**kw):
    kw.setdefault("quality", evaluated(27, 30))
    return backend("local", 0.99, local=True, verified=True, **kw)


# --- The arithmetic ---


def test_the_value_is_the_lower_bound_of_the_pass_rate():
    r = assess(feature=chat(local()))
    link = r.links[1]
    assert link.counted and link.value == pytest.approx(L27) and link.effectiveness == 1.0
    # anthropic down 1 %; local up 99 % of that, at 0.7438 of the value; 1 % of 1 % unserved
    assert r.unavailability == pytest.approx(0.01 * (0.99 * (1 - L27) + 0.01))
    assert "quality 0.74 (27 of 30 passed, 95% interval 0.74-0.97)" in link.status
    # More cases at the same pass rate: a narrower interval, a higher value, less risk.
    more = assess(feature=chat(local(quality=evaluated(270, 300))))
    assert more.links[1].value > link.value and more.minutes < r.minutes


def test_unjudged_cases_and_errors_are_not_quality_failures_and_none_judged_is_no_measurement():
    figure = replace(evaluated(27, 30), cases=40, unjudged=5, errors={"timeout": 5})
    assert assess(feature=chat(local(quality=figure))).links[1].value == pytest.approx(L27)
    nothing = replace(evaluated(0, 0), cases=10, unjudged=10)
    r = assess(feature=chat(local(quality=nothing)))
    assert not r.links[1].counted and r.links[1].lacks == ("quality",)
    assert r.minutes == pytest.approx(0.01 * MONTH_MINUTES)


def test_an_ai_fallback_without_an_eval_is_unverified_whatever_the_drill_says():
    r = assess(feature=chat(backend("local", 0.99, local=True, verified=True)))
    link = r.links[1]
    assert not link.counted and link.lacks == ("quality",) and r.unverified == ("local",)
    assert link.status == ("verified 2025-03-01, but quality not measured: airisk eval run --feature chat "
                           "--backend local: counted as absent")
    assert r.minutes == pytest.approx(0.01 * MONTH_MINUTES)
    assert link.minutes_if_verified == pytest.approx(0.01 * 0.01 * MONTH_MINUTES)  # at quality 1: the best case
    # And an eval without a drill is unverified too.
    undrilled = assess(feature=chat(replace(local(), verified_at=None)))
    assert undrilled.links[1].lacks == ("drill",) and undrilled.minutes == pytest.approx(0.01 * MONTH_MINUTES)


@pytest.mark.parametrize(("cap", "peak", "share"), [(2.0, 3.0, 2 / 3), (3.0, 3.0, 1.0), (10.0, 3.0, 1.0),
                                                    (0.5, 200.0, 0.0025)])
def test_traffic_above_capacity_is_not_served(cap, peak, share):
    r = assess(feature=chat(local(capacity=capacity(cap), effectiveness=0.9), peak_rps=peak,
                            peak_source="features.chat.rate"))
    link = r.links[1]
    assert link.capacity_share == pytest.approx(share) and link.effectiveness == pytest.approx(0.9 * share)
    served = 0.01 * 0.99 * 0.9 * share
    assert r.unavailability == pytest.approx(served * (1 - L27) + (0.01 - served))
    assert any(f"against {peak:.3g} req/s at peak (features.chat.rate): serves {share:.0%}" in n for n in link.notes)


def test_unknown_capacity_or_traffic_counts_as_unlimited_and_says_so():
    unmeasured = assess(feature=chat(local(), peak_rps=3.0)).links[1]
    assert unmeasured.capacity_share is None and unmeasured.effectiveness == 1.0
    assert unmeasured.notes == ("capacity not measured: counted as unlimited (airisk eval capacity --feature chat "
                                "--backend local)",)
    no_traffic = assess(feature=chat(local(capacity=capacity(2.0)))).links[1]
    assert no_traffic.capacity_share is None and no_traffic.effectiveness == 1.0
    assert no_traffic.notes[0].startswith("traffic not known (set features.chat.rate")
    full = assess(feature=chat(local(capacity=capacity(2.0)), peak_rps=3.0))
    assert assess(feature=chat(local())).minutes == assess(feature=chat(local(capacity=capacity(2.0)))).minutes
    assert full.minutes > assess(feature=chat(local())).minutes


def test_capacity_zero_is_no_fallback():
    r = assess(feature=chat(local(capacity=capacity(0.0)), peak_rps=3.0))
    assert not r.links[1].counted and r.links[1].lacks == ("capacity",)
    assert "capacity 0 req/s: it serves nothing: counted as absent" in r.links[1].status
    assert r.unavailability == assess(feature=chat()).unavailability
    assert r.links[1].minutes_if_verified is None  # a drill would not help


def test_below_min_quality_counts_as_absent_and_says_what_reaching_it_saves():
    r = assess(feature=chat(local(), min_quality=0.8))
    link = r.links[1]
    assert not link.counted and link.lacks == ("min_quality",) and r.min_quality == 0.8
    assert "quality 0.74 (27 of 30 passed, 95% interval 0.74-0.97) below min_quality 0.8" in link.status
    assert r.minutes == pytest.approx(0.01 * MONTH_MINUTES)
    assert link.minutes_at_min_quality == pytest.approx(0.01 * (0.99 * 0.2 + 0.01) * MONTH_MINUTES)
    assert link.minutes_if_verified is None
    # At the bar it counts.
    assert assess(feature=chat(local(), min_quality=round(L27, 6) - 1e-6)).links[1].counted
    # Below the bar and undrilled: what both would give.
    both = assess(feature=chat(replace(local(), verified_at=None), min_quality=0.8)).links[1]
    assert both.lacks == ("drill", "min_quality") and both.minutes_at_min_quality == link.minutes_at_min_quality


def test_the_primary_keeps_value_one_and_its_quality_is_context():
    primary = backend("anthropic", 0.99, quality=evaluated(20, 30, backend="anthropic"))
    r = assess(feature=FeatureInput("chat", (primary, local())))
    assert r.links[0].value == 1.0 and r.links[0].notes[0].startswith("quality 0.49 (20 of 30 passed")
    assert "for context only" in r.links[0].notes[0]
    assert r.unavailability == pytest.approx(assess(feature=chat(local())).unavailability)
    # Even below min_quality, with no capacity to speak of.
    low = replace(primary, capacity=capacity(0.0, backend="anthropic"))
    assert assess(feature=FeatureInput("chat", (low,), min_quality=0.9)).minutes == pytest.approx(0.01 * MONTH_MINUTES)


def test_degraded_modes_are_unchanged():
    r = assess(feature=chat(degraded("canned", 0.5), min_quality=0.9, peak_rps=100.0))
    assert r.links[1].counted and r.links[1].value == 0.5 and r.links[1].capacity_share is None
    assert r.unavailability == pytest.approx(0.01 * 0.5)


def test_a_fallback_worse_than_the_link_behind_it_takes_requests_from_it():
    """The condition on the monotonicity properties, shown: an AI fallback at 0.74 in front of a
    degraded mode declared at 0.9 serves answers worse than the degraded mode would have, so more of
    its capacity raises the risk, as it would in the product."""
    def risk(cap: float) -> float:
        return assess(feature=chat(local(capacity=capacity(cap)), degraded("cache", 0.9), peak_rps=4.0)).minutes

    assert risk(1.0) < risk(2.0) < risk(4.0)
    assert risk(0.0) < risk(1.0)  # and none at all is best


def test_a_what_if_counts_an_unmeasured_quality_as_one_and_says_so():
    base = chat()
    r = assess(feature=what_if(feature=base, add_fallback=backend("local", 0.99, local=True)))
    assert r.links[1].value == 1.0 and "quality 1.00 assumed (not measured)" in r.links[1].status
    added = backend("local", 0.99, local=True, quality=evaluated(27, 30), capacity=capacity(2.0))
    measured = assess(feature=what_if(feature=replace(base, peak_rps=3.0), add_fallback=added))
    assert measured.links[1].value == pytest.approx(L27) and measured.links[1].capacity_share == pytest.approx(2 / 3)
    assert "quality 0.74 (27 of 30 passed" in measured.links[1].status


def test_the_breakdown_json_names_every_new_term():
    r = assess(feature=chat(local(capacity=capacity(2.0)), peak_rps=3.0, peak_source="features.chat.rate",
                            min_quality=0.5))
    d = r.to_dict()
    assert d["min_quality"] == 0.5 and d["peak_rate"] == {"rps": 3.0, "source": "features.chat.rate"}
    link = d["links"][1]
    assert link["quality"] == pytest.approx(L27) and link["assumed_quality"] is None
    assert link["measured_quality"]["passed"] == 27 and link["measured_quality"]["judged"] == 30
    assert link["measured_quality"]["interval"] == pytest.approx(list(wilson(27, 30)))
    assert link["capacity"]["rate_rps"] == 2.0 and link["capacity_share"] == pytest.approx(2 / 3)
    assert link["effectiveness_used"] == pytest.approx(2 / 3) and link["effectiveness"] == 1.0
    assert link["lacks"] == [] and link["minutes_at_min_quality"] is None and len(link["notes"]) == 1
    assert d["links"][0]["measured_quality"] is None and d["links"][0]["quality"] == 1.0


# --- The peak rate in the proxy log ---


def _requests(session: Session, feature: str | None, at: datetime, n: int, *, source: str = "127.0.0.1:8080",
              route: str = "anthropic") -> None:
    """``n`` requests of ``feature`` spread over the minute starting at ``at``."""
    write_proxy_requests(session=session, source=source, entries=[
        {"at": (at + timedelta(seconds=59 * i / max(n, 1))).timestamp(), "route": route, "feature": feature,
         "status": 200} for i in range(n)])
    session.commit()


def test_the_peak_rate_is_the_busiest_minute(session: Session):
    _requests(session, "chat", T0, 60)
    _requests(session, "chat", T0 + timedelta(minutes=5), 100, route="anthropic")
    _requests(session, "chat", T0 + timedelta(minutes=5), 80, route="local")  # every route together
    _requests(session, "chat", T0 + timedelta(minutes=9), 900, source="drill:outage:3")  # a drill's load
    _requests(session, "tags", T0 + timedelta(minutes=7), 30)
    _requests(session, None, T0 + timedelta(minutes=8), 500)  # no feature header
    peaks = peak_rates(session=session, since=T0 - timedelta(days=1), until=T0 + timedelta(hours=1))
    assert set(peaks) == {"chat", "tags"}
    assert (peaks["chat"].requests, peaks["chat"].minute, peaks["chat"].rps) == (180, T0 + timedelta(minutes=5), 3.0)
    assert (peaks["tags"].requests, peaks["tags"].minute) == (30, T0 + timedelta(minutes=7))
    # The window bounds it; of equal minutes the earliest is named.
    later = peak_rates(session=session, since=T0 + timedelta(minutes=6))
    assert "chat" not in later and later["tags"].requests == 30
    _requests(session, "tags", T0 + timedelta(minutes=2), 30)
    assert peak_rates(session=session)["tags"].minute == T0 + timedelta(minutes=2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offsets=st.lists(st.tuples(st.sampled_from(["chat", "tags", "ünï"]), st.integers(0, 3 * 3600 * 1000)),
                        min_size=1, max_size=60))
def test_the_peak_rate_agrees_with_counting_by_hand(engine, offsets):
    """Any request times (milliseconds within three hours) and features: the busiest minute found by
    the query is the busiest minute counted in Python. (One database per backend, emptied per example.)"""
    expected: dict[str, Counter] = {}
    for feature, ms in offsets:
        at = T0 + timedelta(milliseconds=ms)
        expected.setdefault(feature, Counter())[at.replace(second=0, microsecond=0)] += 1
    with Session(engine) as session:
        session.exec(sa.delete(ProxyRequestRow))
        write_proxy_requests(session=session, entries=[
            {"at": (T0 + timedelta(milliseconds=ms)).timestamp(), "route": "openai", "feature": f, "status": 200}
            for f, ms in offsets])
        session.commit()
        peaks = peak_rates(session=session)
    assert set(peaks) == set(expected)
    for feature, counts in expected.items():
        top = max(counts.values())
        assert peaks[feature].requests == top
        assert peaks[feature].minute == min(m for m, n in counts.items() if n == top)


# --- From real rows ---

CONFIG = """
targets:
  - {provider: anthropic, name: claude}
local_model: {}
features:
  chat:
    criticality: high
    latency_budget: {first_token: 2s, total: 10s}
    chain: [{backend: claude}, {backend: local}, {degraded: canned, quality: 0.5}]
"""


def _worked_rows(session: Session, now: datetime) -> None:
    """docs/RISK_MODEL.md §6 as rows: claude 998 of 1,000 probes, local 990 of 1,000, a drill that broke
    anthropic with 90 % full answers (and the rest degraded), local passing 27 of 30 judged cases on
    chat's eval set and holding 2 req/s."""
    _probes(session, "claude", [("down", None, 40)] * 2 + [("up", 300, 900)] * 998)
    _probes(session, "local", [("down", None, 5)] * 10 + [("up", 100, 400)] * 990)
    _verify(session, feature="chat", faulted=["anthropic"], answered_by=["local"], ok=0.9, answered=1.0,
            at=now - timedelta(hours=2))
    store_eval(session, feature="chat", backend="local", passed=27, n=33, at=now - timedelta(hours=1),
               unjudged=2, errors=1)  # 27 passed, 3 failed: unjudged and errors are not quality failures
    store_eval(session, feature="chat", backend="claude", passed=29, n=30, at=now - timedelta(hours=1))
    record_capacity(session, CapacityFigure("chat", "local", now - timedelta(minutes=30), 2.0, p95_ms=900.0))


def _chat(config, session: Session, now: datetime):
    return next(f for f in score_features(config=config, session=session, now=now).features if f.feature == "chat")


def test_the_worked_example_from_real_rows_with_the_proxy_logs_peak(session: Session):
    config = parse_config(CONFIG, environ={})
    now = T0 + timedelta(days=1)
    _worked_rows(session, now)
    # No rate configured: the proxy log's busiest minute, 180 requests, is 3 req/s; a drill's 600 are not traffic.
    _requests(session, "chat", T0 + timedelta(hours=3), 120)
    _requests(session, "chat", T0 + timedelta(hours=4), 180)
    _requests(session, "chat", T0 + timedelta(hours=5), 600, source="drill:outage:1")
    r = _chat(config, session, now)
    assert r.peak_rps == 3.0 and r.peak_source == ("proxy log: 180 requests in the busiest minute "
                                                   "(2025-03-03 14:00 UTC) / 60")
    link = r.links[1]
    assert link.counted and link.value == pytest.approx(L27) and link.link.measured_quality.unjudged == 2
    assert link.capacity_share == pytest.approx(2 / 3) and link.effectiveness == pytest.approx(0.6)
    assert r.minutes == pytest.approx(30.688, abs=5e-4) and r.grade == "D"
    assert r.links[0].value == 1.0 and "29 of 30 passed" in r.links[0].notes[0]
    # A configured rate wins over the proxy log.
    rated = parse_config(CONFIG.replace("criticality: high", "criticality: high\n    rate: 6"), environ={})
    r6 = _chat(rated, session, now)
    assert (r6.peak_rps, r6.peak_source) == (6.0, "features.chat.rate") and r6.links[1].capacity_share == 1 / 3
    assert r6.minutes > r.minutes


def test_from_real_rows_without_traffic_min_quality_and_stale_figures(session: Session):
    config = parse_config(CONFIG, environ={})
    now = T0 + timedelta(days=1)
    _worked_rows(session, now)
    r = _chat(config, session, now)
    assert r.peak_rps is None and r.links[1].capacity_share is None
    assert r.links[1].notes[0].startswith("traffic not known")
    assert r.minutes == pytest.approx(24.433, abs=5e-4)  # §6: quality L, unlimited
    strict = parse_config(CONFIG.replace("criticality: high", "criticality: high\n    min_quality: 0.8"), environ={})
    s = _chat(strict, session, now)
    assert s.links[1].lacks == ("min_quality",) and s.minutes == pytest.approx(43.2)
    # An eval of another feature, or one older than the verification window (90 days), proves nothing here.
    later = now + timedelta(days=91)
    _probes(session, "claude", [("up", 300, 900)] * 10, start=later - timedelta(hours=1))
    _probes(session, "local", [("up", 100, 400)] * 10, start=later - timedelta(hours=1))
    _verify(session, feature="chat", faulted=["anthropic"], answered_by=["local"], ok=1.0, answered=1.0,
            at=later - timedelta(hours=2))
    store_eval(session, feature="search", backend="local", passed=30, n=30, at=later - timedelta(hours=1))
    after = _chat(config, session, later)
    assert after.links[1].lacks == ("quality",) and after.links[1].link.capacity is None
    assert after.links[1].link.verified_at == later - timedelta(hours=2)
