"""Properties the risk model must keep for any chain (hypothesis): the issue's four, and the bookkeeping."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.risk import FeatureInput, Link, Measurement, assess
from monitor.risk.chain import Term, chain_outcome
from monitor.risk.grade import GRADE_ORDER, MONTH_MINUTES, grade_for, score_for

TOL = 1e-9
WINDOW = 30 * 86400.0
OWNED = ("local", "gpu-box")
DOMAINS = ("openai", "anthropic", "gemini", *OWNED)
VERIFIED = datetime(2025, 3, 1, tzinfo=UTC)


@st.composite
def measurements(draw, *, allow_none: bool = True) -> Measurement | None:
    if allow_none and draw(st.booleans()) and draw(st.booleans()):  # a quarter unmeasured
        return None
    samples = draw(st.integers(1, 50_000))
    answered = draw(st.integers(0, samples))
    within = draw(st.integers(0, answered))
    return Measurement(samples, answered, within, draw(st.floats(0, WINDOW)), WINDOW, draw(st.booleans()))


@st.composite
def ai_links(draw, *, domains=DOMAINS, verified: bool | None = None, measured: bool = False) -> Link:
    domain = draw(st.sampled_from(domains))
    provider = draw(st.sampled_from(domains)) if draw(st.booleans()) else domain  # a config may regroup domains
    return Link(
        name=f"{provider}-{draw(st.integers(0, 3))}", kind="backend", provider=provider, local=provider in OWNED,
        domain=domain, measurement=draw(measurements(allow_none=not measured)),
        verified_at=VERIFIED if (draw(st.booleans()) if verified is None else verified) else None,
        effectiveness=draw(st.one_of(st.none(), st.floats(0, 1))),
    )


@st.composite
def degraded_links(draw, *, verified: bool | None = None) -> Link:
    name = draw(st.sampled_from(("heuristic", "cached", "canned")))
    return Link(name=name, kind="degraded", local=True, domain=f"degraded:{name}",
                quality=draw(st.floats(0.01, 1)),
                verified_at=VERIFIED if (draw(st.booleans()) if verified is None else verified) else None,
                effectiveness=draw(st.one_of(st.none(), st.floats(0, 1))))


@st.composite
def features(draw, *, domains=DOMAINS, max_fallbacks: int = 5) -> FeatureInput:
    primary = draw(ai_links(domains=domains))
    fallbacks = draw(st.lists(st.one_of(ai_links(domains=domains), degraded_links()), max_size=max_fallbacks))
    return FeatureInput(name="f", chain=(primary, *fallbacks),
                        criticality=draw(st.sampled_from(("low", "medium", "high", "critical"))))


def _rank(grade: str) -> int:
    return GRADE_ORDER.index(grade)


def _no_better(after, before) -> None:
    """``after`` is at least as risky as ``before``: minutes, grade and score."""
    assert after.unavailability >= before.unavailability - TOL
    assert after.score <= before.score + 1e-6
    if after.weighted_minutes >= before.weighted_minutes:
        assert _rank(after.grade) >= _rank(before.grade)


@settings(max_examples=400, deadline=None)
@given(features(), ai_links(verified=True, measured=True), st.integers(1, 6))
def test_adding_a_working_verified_fallback_never_raises_risk(feature, fallback, position):
    before = assess(feature=feature)
    chain = list(feature.chain)
    chain.insert(min(position, len(chain)), replace(fallback, effectiveness=None))
    _no_better(before, assess(feature=replace(feature, chain=tuple(chain))))


@settings(max_examples=300, deadline=None)
@given(features(), st.one_of(ai_links(verified=True, measured=True), degraded_links(verified=True)))
def test_adding_any_verified_last_resort_never_raises_risk(feature, fallback):
    before = assess(feature=feature)
    _no_better(before, assess(feature=replace(feature, chain=(*feature.chain, fallback))))


@settings(max_examples=400, deadline=None)
@given(features(), st.data())
def test_lower_availability_of_any_backend_never_lowers_risk(feature, data):
    measured = [i for i, link in enumerate(feature.chain)
                if link.kind == "backend" and link.measurement is not None and link.measurement.within_budget > 0]
    if not measured:
        feature = replace(feature, chain=(replace(feature.chain[0], measurement=Measurement(10, 10, 10, 0, WINDOW)),
                                          *feature.chain[1:]))
        measured = [0]
    i = data.draw(st.sampled_from(measured))
    m = feature.chain[i].measurement
    worse = replace(m, within_budget=data.draw(st.integers(0, m.within_budget - 1)))
    chain = tuple(replace(link, measurement=worse) if j == i else link for j, link in enumerate(feature.chain))
    _no_better(assess(feature=replace(feature, chain=chain)), assess(feature=feature))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.sampled_from("abc"), st.floats(0, 1)), min_size=1, max_size=6),
       st.data())
def test_lower_availability_never_lowers_a_chains_loss(terms, data):
    """The same at the arithmetic's level, AI terms only (value 1), any domains and effectiveness."""
    chain = [Term(a, d, effectiveness=e) for a, d, e in terms]
    i = data.draw(st.integers(0, len(chain) - 1))
    lower = data.draw(st.floats(0, chain[i].availability))
    worse = [replace(t, availability=lower) if j == i else t for j, t in enumerate(chain)]
    assert chain_outcome(worse).unavailability >= chain_outcome(chain).unavailability - TOL


@settings(max_examples=300, deadline=None)
@given(features(domains=OWNED))
def test_a_feature_served_only_by_local_backends_has_no_outsourced_downtime(feature):
    r = assess(feature=feature)
    assert all(link.local for link in feature.chain)
    assert r.outsourced_minutes == 0 and r.traffic_outsourced == 0 and r.outsourced_share == 0
    assert r.owned_minutes == pytest.approx(r.minutes, abs=TOL)


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 1e7), st.floats(0, 1e7))
def test_the_grade_and_score_are_monotonic_in_expected_downtime(a, b):
    low, high = sorted((a, b))
    assert _rank(grade_for(low)) <= _rank(grade_for(high))
    assert score_for(low) >= score_for(high)
    assert 0 <= score_for(high) <= 100


@settings(max_examples=300, deadline=None)
@given(features(), features())
def test_features_grade_in_the_order_of_their_weighted_minutes(a, b):
    ra, rb = assess(feature=a), assess(feature=b)
    if ra.weighted_minutes <= rb.weighted_minutes:
        assert _rank(ra.grade) <= _rank(rb.grade) and ra.score >= rb.score


@settings(max_examples=300, deadline=None)
@given(features())
def test_the_breakdown_adds_up(feature):
    r = assess(feature=feature)
    assert 0 <= r.unavailability <= 1
    assert r.minutes == pytest.approx(r.unavailability * MONTH_MINUTES)
    assert sum(lr.minutes for lr in r.links) == pytest.approx(r.minutes, abs=1e-6)
    assert r.outsourced_minutes + r.owned_minutes == pytest.approx(r.minutes, abs=1e-6)
    assert r.traffic_outsourced + r.traffic_owned + r.traffic_unserved == pytest.approx(1, abs=TOL)
    assert all(lr.minutes == 0 and lr.traffic == 0 for lr in r.links if not lr.counted)
    if r.minutes > 0:
        assert r.main_link is not None and r.main_link.minutes == max(lr.minutes for lr in r.links)
        assert r.main_contributor == r.main_link.link.label


@settings(max_examples=300, deadline=None)
@given(features())
def test_an_unverified_fallback_counts_as_absent(feature):
    r = assess(feature=feature)
    kept = tuple(link for link, lr in zip(feature.chain, r.links, strict=True) if lr.counted or lr.role == "primary")
    assert assess(feature=replace(feature, chain=kept)).unavailability == pytest.approx(r.unavailability, abs=TOL)
