"""Properties the risk model must keep for any chain (hypothesis): the issues' (drills: four; quality and
capacity: five more), and the bookkeeping.

A fallback whose value is below a later link's takes requests from that better link (in the product
as in the model): the monotonicity properties hold for a fallback at least as good as every counted
link after it, and `tests/monitor/test_risk_quality.py` shows the other case.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.quality.figures import CapacityFigure, QualityFigure
from monitor.quality.stats import wilson
from monitor.risk import FeatureInput, Link, Measurement, assess
from monitor.risk.chain import Term, chain_outcome
from monitor.risk.grade import GRADE_ORDER, MONTH_MINUTES, grade_for, score_for
from monitor.risk.model import UNMEASURED_AVAILABILITY

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
def quality_figures(draw, *, allow_none: bool = True) -> QualityFigure | None:
    if allow_none and draw(st.integers(0, 4)) == 0:  # a fifth never evaluated
        return None
    judged = draw(st.integers(0, 300))  # 0: a run that judged nothing (no measurement)
    passed = draw(st.integers(0, judged))
    return QualityFigure("f", "b", 1, VERIFIED, judged + draw(st.integers(0, 5)), passed, judged - passed)


@st.composite
def capacities(draw) -> CapacityFigure | None:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return None  # not measured: unlimited
    rate = 0.0 if kind == 1 else draw(st.floats(0.01, 500))  # 0: no rate held
    return CapacityFigure("f", "b", VERIFIED, rate)


@st.composite
def ai_links(draw, *, domains=DOMAINS, verified: bool | None = None, measured: bool = False) -> Link:
    domain = draw(st.sampled_from(domains))
    provider = draw(st.sampled_from(domains)) if draw(st.booleans()) else domain  # a config may regroup domains
    return Link(
        name=f"{provider}-{draw(st.integers(0, 3))}", kind="backend", provider=provider, local=provider in OWNED,
        domain=domain, measurement=draw(measurements(allow_none=not measured)),
        verified_at=VERIFIED if (draw(st.booleans()) if verified is None else verified) else None,
        effectiveness=draw(st.one_of(st.none(), st.floats(0, 1))),
        measured_quality=draw(quality_figures(allow_none=not measured)), capacity=draw(capacities()),
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
                        criticality=draw(st.sampled_from(("low", "medium", "high", "critical"))),
                        min_quality=draw(st.one_of(st.none(), st.floats(0, 1))),
                        peak_rps=draw(st.one_of(st.none(), st.floats(0.01, 1000))))


def _rank(grade: str) -> int:
    return GRADE_ORDER.index(grade)


def _no_better(after, before) -> None:
    """``after`` is at least as risky as ``before``: minutes, grade and score."""
    assert after.unavailability >= before.unavailability - TOL
    assert after.score <= before.score + 1e-6
    if after.weighted_minutes >= before.weighted_minutes:
        assert _rank(after.grade) >= _rank(before.grade)


def _best_after(risk, i: int) -> float:
    """The highest value of a counted link after position ``i`` (0 without any)."""
    return max((lr.value for lr in risk.links[i + 1:] if lr.counted), default=0.0)


@settings(max_examples=400, deadline=None)
@given(features(), ai_links(verified=True, measured=True), st.integers(1, 6))
def test_adding_a_working_verified_fallback_never_raises_risk(feature, fallback, position):
    """Working: at least as good as every counted link after it (else it takes their requests)."""
    before = assess(feature=feature)
    at = min(position, len(feature.chain))
    fallback = replace(fallback, effectiveness=None)
    value = assess(feature=replace(feature, chain=(feature.chain[0], fallback))).links[1].value or 0.0
    best = _best_after(before, at - 1)
    if value < best:
        fallback = replace(fallback, assumed_quality=best)
    chain = list(feature.chain)
    chain.insert(at, fallback)
    _no_better(before, assess(feature=replace(feature, chain=tuple(chain))))


@settings(max_examples=300, deadline=None)
@given(features(), st.one_of(ai_links(verified=True, measured=True), degraded_links(verified=True)))
def test_adding_any_verified_last_resort_never_raises_risk(feature, fallback):
    before = assess(feature=feature)
    _no_better(before, assess(feature=replace(feature, chain=(*feature.chain, fallback))))


@settings(max_examples=400, deadline=None)
@given(features(), st.data())
def test_lower_availability_of_any_backend_never_lowers_risk(feature, data):
    risk = assess(feature=feature)
    measured = [i for i, link in enumerate(feature.chain)
                if link.kind == "backend" and link.measurement is not None and link.measurement.within_budget > 0
                and (risk.links[i].value or 0.0) >= _best_after(risk, i)]
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


# --- Quality and capacity: an AI fallback counts only as far as it is proven ---


def _today(feature: FeatureInput) -> float:
    """The rule before quality was measured, as it was: a primary (measured, else the prior), a degraded
    mode once verified, an AI fallback once verified and probed, at value 1 and the drill's effectiveness."""
    terms = []
    for i, link in enumerate(feature.chain):
        m = link.measurement
        measured = m is not None and m.samples > 0
        e = 1.0 if link.effectiveness is None else link.effectiveness
        domain = link.domain or link.provider or link.label
        verified = link.hypothetical or link.verified_at is not None
        if i == 0:
            terms.append(Term(m.availability if measured else UNMEASURED_AVAILABILITY, domain, link.quality, e))
        elif link.kind == "degraded" and verified:
            terms.append(Term(1.0, domain, link.quality, e))
        elif link.kind == "backend" and verified and measured:
            terms.append(Term(m.availability, domain, link.quality, e))
    return chain_outcome(terms).unavailability


def _fallback_index(feature: FeatureInput, data) -> int | None:
    ai = [i for i, link in enumerate(feature.chain) if i > 0 and link.kind == "backend"]
    return data.draw(st.sampled_from(ai)) if ai else None


@settings(max_examples=200, deadline=None)
@given(features(), st.data())
def test_a_higher_pass_rate_never_raises_risk(feature, data):
    """For an AI fallback at least as good, after the change, as every counted link after it; whatever
    the feature's min_quality (crossing it turns absent into counted)."""
    i = _fallback_index(feature, data)
    if i is None:
        return
    link = feature.chain[i]
    q = link.measured_quality or data.draw(quality_figures(allow_none=False))
    link = replace(link, measured_quality=q)
    feature = replace(feature, chain=tuple(link if j == i else x for j, x in enumerate(feature.chain)))
    if q.failed == 0:
        return
    more = data.draw(st.integers(1, q.failed))
    better = replace(q, passed=q.passed + more, failed=q.failed - more)
    assert wilson(better.passed, better.judged)[0] > wilson(q.passed, q.judged)[0]  # the value follows the rate
    after = replace(feature, chain=tuple(replace(link, measured_quality=better) if j == i else x
                                         for j, x in enumerate(feature.chain)))
    before = assess(feature=feature)
    if better.lower < _best_after(before, i):
        return
    _no_better(before, assess(feature=after))


@settings(max_examples=200, deadline=None)
@given(features(), st.data())
def test_more_capacity_never_raises_risk(feature, data):
    """For an AI fallback at least as good as every counted link after it; from none held (0) up to
    more than the peak, or unmeasured (counted as unlimited)."""
    i = _fallback_index(feature, data)
    if i is None:
        return
    link = feature.chain[i]
    low = data.draw(st.floats(0, 100))
    high = data.draw(st.one_of(st.none(), st.floats(low, 1000)))

    def with_capacity(rate: float | None) -> FeatureInput:
        cap = None if rate is None else CapacityFigure("f", "b", VERIFIED, rate)
        return replace(feature, chain=tuple(replace(link, capacity=cap) if j == i else x
                                            for j, x in enumerate(feature.chain)))

    before = assess(feature=with_capacity(low))
    value = assess(feature=with_capacity(high)).links[i].value
    if value is not None and value < _best_after(before, i):
        return
    _no_better(before, assess(feature=with_capacity(high)))


@settings(max_examples=200, deadline=None)
@given(features(), st.data())
def test_a_perfect_unlimited_verified_fallback_gives_exactly_the_old_figure(feature, data):
    """Every AI fallback at quality 1 with unlimited capacity (unmeasured, or at least the peak): the
    figure of the rule before quality was measured, to the last bit."""
    def perfect(link: Link) -> Link:
        if link.kind != "backend":
            return link
        peak = feature.peak_rps
        cap = data.draw(st.one_of(st.none(), st.floats(peak if peak is not None else 0.01, 2000)))
        return replace(link, assumed_quality=1.0, capacity=None if cap is None else CapacityFigure("f", "b", VERIFIED,
                                                                                                   max(cap, 0.01)))
    feature = replace(feature, chain=(feature.chain[0], *(perfect(link) for link in feature.chain[1:])))
    assert assess(feature=feature).unavailability == _today(feature)


@settings(max_examples=200, deadline=None)
@given(features(), st.data())
def test_a_fallback_with_capacity_zero_equals_none(feature, data):
    i = _fallback_index(feature, data)
    if i is None:
        return
    zero = replace(feature.chain[i], capacity=CapacityFigure("f", "b", VERIFIED, 0.0))
    with_zero = replace(feature, chain=tuple(zero if j == i else x for j, x in enumerate(feature.chain)))
    without = replace(feature, chain=tuple(x for j, x in enumerate(feature.chain) if j != i))
    r = assess(feature=with_zero)
    assert not r.links[i].counted and "capacity" in r.links[i].lacks
    assert r.unavailability == assess(feature=without).unavailability


@settings(max_examples=200, deadline=None)
@given(features(), st.floats(0, 1))
def test_a_fallback_below_min_quality_equals_none(feature, min_quality):
    feature = replace(feature, min_quality=min_quality)
    r = assess(feature=feature)
    below = {i for i, lr in enumerate(r.links) if i > 0 and lr.link.kind == "backend" and lr.value is not None
             and lr.value < min_quality}
    assert all(not r.links[i].counted and "min_quality" in r.links[i].lacks for i in below)
    without = replace(feature, min_quality=None, chain=tuple(x for j, x in enumerate(feature.chain) if j not in below))
    assert r.unavailability == assess(feature=without).unavailability
