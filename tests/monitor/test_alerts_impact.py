"""The impact of an alert: the features it hits, what serves each, the drill and eval behind it, the cost so far.

From a real store (SQLite, and PostgreSQL under CI) with probes, drills, evals and incidents written through
the store's own functions; and hypothesis over any feature graph and any set of hit targets.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from monitor.alerts.events import AlertEvent, Member, Transition
from monitor.alerts.impact import (
    CRITICALITIES,
    STATUSES,
    FeatureImpact,
    Impact,
    dashboard_url,
    impact_of,
    impact_source,
)
from monitor.alerts.rules import severity_for
from monitor.config import parse_config
from monitor.config.model import AiriskConfig
from monitor.quality.stats import wilson
from monitor.store.db import make_engine, migrate
from monitor.store.incidents import open_incident
from monitor.store.models import AlertOutbox
from tests.monitor.conftest import T0
from tests.monitor.test_risk import _probes, _verify, store_eval

NOW = T0 + timedelta(days=1)
OPENED = NOW - timedelta(minutes=30)
ENV = {"AIRISK_DASHBOARD_URL": "https://airisk.example.com/"}

CONFIG = """
targets:
  - {provider: openai, name: gpt-4o}
  - {provider: anthropic, name: claude}
local_model: {}
features:
  support:
    criticality: critical
    chain: [{backend: gpt-4o}]
  chat:
    criticality: high
    min_quality: 0.8
    chain: [{backend: gpt-4o}, {backend: local}]
  tags:
    chain: [{backend: openai}, {degraded: heuristic, quality: 0.4}]
  search:
    criticality: low
    chain: [{backend: claude}, {backend: gpt-4o}]
  summary:
    criticality: critical
    chain: [{backend: claude}]
"""


def _store(session: Session) -> int:
    """A month of probes, the drills that verified chat's and tags' fallbacks, chat's eval, and gpt-4o's
    incident (opened 30 minutes before NOW); returns the incident's id."""
    for target in ("gpt-4o", "claude", "local"):
        _probes(session, target, [("up", 200, 600)] * 100, start=NOW - timedelta(days=2))
    _verify(session, feature="chat", faulted=["openai"], answered_by=["local"], ok=0.9, answered=0.9,
            at=NOW - timedelta(hours=2))
    _verify(session, feature="tags", faulted=["openai"], answered_by=[], ok=0.2, answered=0.9,
            at=NOW - timedelta(hours=5))
    store_eval(session, feature="chat", backend="local", passed=30, n=30, at=NOW - timedelta(hours=1))
    row = open_incident(session=session, target="gpt-4o", provider="openai", region="eu", state="down",
                        cause={"rule": "failures", "kinds": {"server_error": 3}}, at=OPENED)
    session.commit()
    return row.id


def _down(target: str = "gpt-4o", incident: int | None = None, at: datetime = OPENED + timedelta(seconds=20),
          state: str = "down", cause: dict | None = None) -> Member:
    return Member.of(Transition(target, "openai", "up", state, at, incident_id=incident, region="eu",
                                cause=cause or {"rule": "failures", "kinds": {"server_error": 3}}))


def test_an_outage_names_each_feature_what_serves_it_and_what_it_costs(session: Session):
    incident = _store(session)
    config = parse_config(CONFIG, environ={})
    impact = impact_of([_down(incident=incident)], config=config, session=session, now=NOW, environ=ENV)

    assert impact.missing == ()
    assert impact.opened_at == OPENED and impact.minutes == pytest.approx(30)
    # Most critical first, then the worst off; summary's chain does not use gpt-4o.
    assert [f.feature for f in impact.features] == ["support", "chat", "tags", "search"]
    support, chat, tags, search = impact.features
    assert impact.worst_criticality == "critical" and not impact.covered

    assert (support.status, support.serving, support.hit_links) == ("unserved", None, ("gpt-4o",))
    assert (support.loss, support.down_minutes, support.degraded_minutes) == (1.0, pytest.approx(30), 0.0)
    assert support.cost_minutes == pytest.approx(30) and support.weighted_cost_minutes == pytest.approx(120)

    # chat falls to local: verified by the drill, its quality measured by the eval, above min_quality.
    lower = wilson(30, 30)[0]
    assert (chat.status, chat.serving, chat.serving_role, chat.counted) == ("covered", "local", "fallback", True)
    assert chat.verified_at == NOW - timedelta(hours=2) and chat.verified_by == "outage"
    assert (chat.pass_rate, chat.quality_lower, chat.quality_judged) == (1.0, pytest.approx(lower), 30)
    assert chat.quality_at == NOW - timedelta(hours=1)
    assert (chat.min_quality, chat.meets_min_quality) == (0.8, True)
    assert "verified" in chat.serving_status and "quality" in chat.serving_status  # the risk model's words
    # The drill saw local answer 90% of chat's requests: 10% are lost, 90% keep the lower bound of quality.
    loss = 0.1 + 0.9 * (1 - lower)
    assert chat.loss == pytest.approx(loss)
    assert chat.down_minutes == pytest.approx(3.0) and chat.degraded_minutes == pytest.approx(27.0)
    assert chat.cost_minutes == pytest.approx(30 * loss)

    # tags names the provider: gpt-4o is its only target, so the outage hits it; the heuristic serves.
    assert (tags.criticality, tags.status, tags.serving, tags.serving_kind) == (
        "medium", "covered", "degraded:heuristic", "degraded")
    assert tags.hit_links == ("openai",) and tags.value == 0.4 and tags.pass_rate is None
    share = (0.9 - 0.2) / (1 - 0.2)  # the drill's degraded answers among those not fully answered
    assert tags.cost_minutes == pytest.approx(30 * (share * 0.6 + (1 - share)))

    assert (search.status, search.serving, search.serving_role) == ("exposed", "claude", "primary")
    assert search.cost_minutes == 0.0 and search.verified_at is None

    assert impact.dashboard_url == f"https://airisk.example.com/providers?target=gpt-4o&incident={incident}"
    assert severity_for("down", impact) == "critical"
    lines = impact.lines()
    assert lines[0].startswith("feature support (critical): nothing serves it; cost so far 30.0 min")
    assert "served by local (fallback, verified" in lines[1] and "meets min_quality 0.8" in lines[1]


def test_a_fallback_that_is_itself_down_is_skipped_and_an_unproven_one_is_counted_as_absent(session: Session):
    incident = _store(session)
    open_incident(session=session, target="claude", provider="anthropic", region="us", state="down",
                  cause={}, at=NOW - timedelta(minutes=5))
    session.commit()
    config = parse_config(CONFIG.replace("min_quality: 0.8", "min_quality: 0.95"), environ={})
    impact = impact_of([_down(incident=incident)], config=config, session=session, now=NOW)
    by = {f.feature: f for f in impact.features}
    assert by["search"].status == "unserved" and by["search"].cost_minutes == pytest.approx(30)
    assert any("claude is itself DOWN" in n for n in by["search"].notes)
    # local answers chat, but below min_quality 0.95 the risk model does not count it: nor does the cost.
    chat = by["chat"]
    assert (chat.status, chat.serving, chat.counted, chat.meets_min_quality) == (
        "unverified_fallback", "local", False, False)
    assert chat.cost_minutes == pytest.approx(30) and chat.loss == 1.0
    assert "below min_quality 0.95" in chat.serving_status
    assert "is BELOW min_quality 0.95" in chat.line()


def test_a_degraded_target_costs_its_measured_error_rate(session: Session):
    _store(session)
    config = parse_config(CONFIG, environ={})
    hit = _down(state="degraded", cause={"rule": "error_rate", "error_rate": 0.25, "kinds": {"overloaded": 5}})
    by = {f.feature: f for f in impact_of([hit], config=config, session=session, now=NOW).features}
    assert by["support"].status == "degraded_primary" and by["support"].serving == "gpt-4o"
    assert by["support"].loss == pytest.approx(0.25)
    # chat: a quarter of requests fail over to local, which serves 90% of them at its quality.
    lower = wilson(30, 30)[0]
    assert by["chat"].loss == pytest.approx(0.25 * (0.1 + 0.9 * (1 - lower)))
    assert severity_for("degraded", impact_of([hit], config=config, session=session, now=NOW)) == "error"


def test_a_recovery_counts_the_cost_up_to_the_recovery(session: Session):
    incident = _store(session)
    config = parse_config(CONFIG, environ={})
    back = Member.of(Transition("gpt-4o", "openai", "down", "up", OPENED + timedelta(minutes=12),
                                incident_id=incident, region="eu", opened_at=OPENED))
    impact = impact_of([back], config=config, session=session, now=NOW)
    assert impact.at == OPENED + timedelta(minutes=12) and impact.minutes == pytest.approx(12)
    assert impact.features[0].cost_minutes == pytest.approx(12)


def test_failing_lookups_leave_their_terms_out_and_say_so():
    """An unmigrated database: every lookup fails; the features and their criticality still come from the config."""
    engine = make_engine("sqlite://")
    config = parse_config(CONFIG, environ={})
    with Session(engine) as session:
        impact = impact_of([_down(incident=3)], config=config, session=session, now=NOW, environ={})
    assert [m.split(":")[0] for m in impact.missing] == ["risk inputs (drills, evals, probes)", "known DOWN targets",
                                                         "incident start (counted from the alert's own time)"]
    assert all("no such table" in m for m in impact.missing)
    assert [f.feature for f in impact.features] == ["support", "chat", "tags", "search"]
    support, chat = impact.features[:2]
    assert support.status == "unserved" and support.cost_minutes is None
    assert chat.status == "unverified_fallback" and chat.counted is None  # not known: pages as if unproven
    assert "cost not counted: the risk inputs could not be read" in chat.notes
    assert impact.dashboard_url == "http://127.0.0.1:8501/providers?target=gpt-4o&incident=3"
    assert severity_for("down", impact) == "critical"


def test_no_session_and_a_broken_config_never_raise():
    config = parse_config(CONFIG, environ={})
    impact = impact_of([_down()], config=config, session=None, now=NOW, environ={})
    assert impact.missing[0].startswith("store: no database session") and len(impact.features) == 4
    broken = impact_of([_down()], config=None, session=None, now=NOW, environ={})  # type: ignore[arg-type]
    assert broken.features == () and broken.missing[0].startswith("impact: AttributeError")
    assert not broken.known and severity_for("down", broken) == "critical"  # in doubt: the rule's own severity
    assert impact_source(config=None, session=None, now=NOW)([_down()]).missing[0].startswith(  # type: ignore[arg-type]
        "impact: AttributeError")


def test_a_postgresql_lookup_failure_does_not_abort_the_alerts_transaction(engine):
    """On PostgreSQL a failed query aborts the transaction; the impact's lookups run in a savepoint, so the
    outbox row written after them still commits."""
    config = parse_config(CONFIG, environ={})
    with Session(engine) as session:
        if engine.dialect.name == "postgresql":
            session.execute(sa.text("DROP TABLE drill_feature"))  # the risk inputs' drill query now fails
        impact = impact_of([_down()], config=config, session=session, now=NOW)
        event = AlertEvent("ch", "down", "trigger", "down:openai:x:ch", "k", "openai", "t", "critical", NOW,
                           (_down(),), impact=impact)
        session.add(AlertOutbox(**event.to_row()))
        session.commit()
        (row,) = session.execute(sa.select(AlertOutbox)).scalars().all()
        assert AlertEvent.from_row(row).impact == impact
    if engine.dialect.name == "postgresql":
        assert impact.missing[0].startswith("risk inputs")


def test_the_dashboard_link_reads_its_base_from_the_environment():
    assert dashboard_url(["gpt 4o"], None, environ={}) == "http://127.0.0.1:8501/providers?target=gpt+4o"
    assert dashboard_url([], 9, environ=ENV) == "https://airisk.example.com/providers?incident=9"


def test_the_impact_survives_the_outbox_and_old_rows_load_without_it(session: Session):
    incident = _store(session)
    config = parse_config(CONFIG, environ={})
    member = _down(incident=incident)
    impact = impact_of([member], config=config, session=session, now=NOW)
    event = AlertEvent("ch", "down", "trigger", "down:openai:1:ch", member.dedup_key, "openai",
                       "openai: gpt-4o@eu is DOWN", "critical", member.at, (member,), impact=impact)
    row = event.to_row()
    stored = AlertOutbox(**json.loads(json.dumps(row)))
    back = AlertEvent.from_row(stored)
    assert back == event and back.worst_criticality == "critical"
    del row["payload"]["impact"]
    old = AlertEvent.from_row(AlertOutbox(**row))
    assert old.impact is None and old.worst_criticality is None and old.members == event.members


# --- Any feature graph, any hit targets ---

PROVIDERS = ("openai", "anthropic", "mistral")
_store_engine = make_engine("sqlite://")
migrate(_store_engine)


@st.composite
def graphs(draw):
    """A config (targets of a few providers; features whose chains name targets, providers or degraded
    modes) and the alert's hits (targets with down or degraded)."""
    n = draw(st.integers(1, 5))
    targets = [{"provider": draw(st.sampled_from(PROVIDERS)), "name": f"t{i}"} for i in range(n)]
    backends = [t["name"] for t in targets] + list(PROVIDERS)
    link = st.one_of(st.sampled_from(backends).map(lambda b: {"backend": b}),
                     st.builds(lambda q: {"degraded": "heuristic", "quality": q}, st.floats(0.05, 1.0)))
    features = {}
    for i in range(draw(st.integers(0, 6))):
        chain = [{"backend": draw(st.sampled_from(backends))}, *draw(st.lists(link, max_size=3))]
        features[f"f{i}"] = {"criticality": draw(st.sampled_from(CRITICALITIES)), "chain": chain,
                             "min_quality": draw(st.none() | st.floats(0, 1))}
    config = AiriskConfig.model_validate({"targets": targets, "features": features})
    names = draw(st.lists(st.sampled_from([t["name"] for t in targets]), min_size=1, unique=True))
    hits = [_down(name, incident=draw(st.none() | st.integers(1, 10**6)), state=draw(st.sampled_from(
        ["down", "degraded"])), cause=draw(st.sampled_from([{}, {"error_rate": 0.4}, {"kinds": {"auth": 2}}])))
        for name in names]
    return config, hits


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.booleans())
def test_any_graph_gives_an_impact_that_round_trips_and_whose_severity_rises_with_criticality(graph, with_store):
    config, hits = graph
    with Session(_store_engine) as session:
        impact = impact_of(hits, config=config, session=session if with_store else None, now=NOW)
        assert impact.known, impact.missing
        assert Impact.from_dict(json.loads(json.dumps(impact.to_dict()))) == impact
        hit_targets = {h.target for h in hits}
        for f in impact.features:
            assert f.status in STATUSES and set(f.hit_by) <= hit_targets and f.hit_links
            assert FeatureImpact.from_dict(json.loads(json.dumps(f.to_dict()))) == f
            if f.cost_minutes is not None:
                assert 0.0 <= f.loss <= 1.0 and f.cost_minutes <= (impact.minutes or 0) + 1e-9
        rule = "down" if any(h.to_state == "down" for h in hits) else "degraded"
        before = severity_for(rule, impact)
        scale = ("info", "warning", "error", "critical")
        for name, feature in config.features.items():
            for higher in CRITICALITIES[CRITICALITIES.index(feature.criticality) + 1:]:
                raised = config.model_copy(update={"features": {**config.features, name: feature.model_copy(
                    update={"criticality": higher})}})
                after = impact_of(hits, config=raised, session=session if with_store else None, now=NOW)
                assert scale.index(severity_for(rule, after)) >= scale.index(before)


def test_severity_is_the_documented_table():
    def one(status: str, criticality: str) -> str:
        return severity_for("down", Impact(("t",), NOW, features=(FeatureImpact("f", criticality, status, ("t",),
                                                                                ("t",)),)))

    assert [one("unserved", c) for c in CRITICALITIES] == ["warning", "error", "error", "critical"]
    assert [one("covered", c) for c in CRITICALITIES] == ["warning"] * 4
    assert [one("exposed", c) for c in CRITICALITIES] == ["info", "info", "warning", "warning"]
    assert severity_for("down", Impact(("t",), NOW)) == "critical"  # no feature uses it: the rule's own
    assert severity_for("recovered", Impact(("t",), NOW, features=(FeatureImpact("f", "critical", "unserved",
                                                                                 ("t",), ("t",)),))) == "info"
