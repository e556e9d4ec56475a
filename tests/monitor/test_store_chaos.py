"""What chaos writes into the store (the proxy log, drill results) and what is read back from it:
dependency discovery and drill-verified fallbacks. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from monitor.config import parse_config
from monitor.dependencies import compare
from monitor.store.drills import drill_features, drill_runs, verified_fallbacks, write_drill
from monitor.store.proxylog import observed_dependencies, proxy_requests, write_proxy_requests
from tests.monitor.conftest import T0


def _entry(feature, route, status=200, at=0.0, **extra):
    return {"at": T0.timestamp() + at, "route": route, "method": "POST", "path": "/chat/completions",
            "model": "m", "feature": feature, "stream": False, "status": status, "faults": [], **extra}


def test_proxy_log_round_trip_and_observed_dependencies(session):
    entries = [_entry("chat", "anthropic"), _entry("chat", "anthropic", 529, 1, faults=["overloaded"]),
               _entry("chat", "local", 200, 2), _entry("tags", "openai", 200, 3, broken="stream_cut"),
               _entry(None, "openai", 200, 4), _entry("search", "local", None, 5, error="client disconnected")]
    assert write_proxy_requests(session=session, entries=entries, source="127.0.0.1:8480") == 6
    session.commit()
    rows = proxy_requests(session=session, feature="chat")
    assert [(r.route, r.status, r.faults) for r in rows] == [("anthropic", 200, []), ("anthropic", 529, ["overloaded"]),
                                                             ("local", 200, [])]
    assert rows[0].at == T0 and rows[0].source == "127.0.0.1:8480"
    edges = {(e.feature, e.route): (e.requests, e.answered) for e in observed_dependencies(session=session)}
    # no feature header: left out; a broken stream or no response is not an answer
    assert edges == {("chat", "anthropic"): (2, 1), ("chat", "local"): (1, 1), ("tags", "openai"): (1, 0),
                     ("search", "local"): (1, 0)}
    assert observed_dependencies(session=session, since=T0 + timedelta(seconds=2.5)) == [
        e for e in observed_dependencies(session=session) if e.last_at >= T0 + timedelta(seconds=2.5)]


def test_dependency_discovery_reports_undeclared_and_unseen(session):
    config = parse_config("""
targets: [{provider: openai, name: gpt}]
features:
  chat: {chain: [{backend: anthropic}, {backend: local}]}
  description: {chain: [{backend: gpt}, {backend: gemini}]}
""", environ={})
    write_proxy_requests(session=session, entries=[
        _entry("chat", "anthropic"), _entry("chat", "local"), _entry("chat", "openai"),  # openai: undeclared
        _entry("description", "openai"), _entry("reviews", "openai")])  # reviews: not declared at all
    session.commit()
    report = {d.feature: d for d in compare(config.features, config.backend_provider,
                                            observed_dependencies(session=session))}
    assert report["chat"].undeclared == ["openai"] and report["chat"].unseen_fallbacks == []
    assert report["description"].declared == ["openai", "gemini"]
    assert report["description"].unseen_fallbacks == ["gemini"] and report["description"].undeclared == []
    assert not report["reviews"].declared_feature and report["reviews"].undeclared == ["openai"]


def _feature(name, answered_by, faulted, ok=1.0):
    return {"feature": name, "expected": "survives", "verdict": "resilient", "meets": True, "requests": 10,
            "ok_rate": ok, "answered_rate": 1.0, "p50_ms": 5.0, "p95_ms": 9.0, "recovery_s": 0.0,
            "faulted_routes": faulted, "answered_by": answered_by, "backends": {}, "phases": {}}


def test_drill_results_and_verified_fallbacks(session):
    run = {"name": "anthropic-down", "started_at": T0.timestamp(), "ended_at": T0.timestamp() + 20, "passed": True,
           "phases": [{"name": "down", "start": 0, "end": 1, "faults": [{"route": "anthropic"}]}], "timeline": []}
    first = write_drill(session=session, run=run, features=[_feature("chat", ["local"], ["anthropic"])])
    later = {**run, "started_at": T0.timestamp() + 3600, "ended_at": T0.timestamp() + 3620}
    # the faulted route itself "answering" (a partial outage) verifies nothing
    second = write_drill(session=session, run=later, features=[_feature("chat", ["local", "anthropic"], ["anthropic"])])
    aborted = {**later, "started_at": T0.timestamp() + 7200, "aborted": "guard", "passed": False}
    write_drill(session=session, run=aborted, features=[_feature("tags", ["gemini"], ["openai"])])
    session.commit()
    assert [r.id for r in drill_runs(session=session, name="anthropic-down")][:2] == [second + 1, second]
    assert [f.answered_by for f in drill_features(session=session, run_id=first)] == [["local"]]
    verified = verified_fallbacks(session=session)
    assert [(v.feature, v.route, v.verified_at) for v in verified] == [("chat", "local", T0 + timedelta(hours=1))]
    assert verified_fallbacks(session=session, since=T0 + timedelta(hours=2)) == []


def test_a_fallback_whose_checked_answers_failed_is_not_seen_answering_by_the_risk_model(session):
    """A drill saw the local fallback answer every request with a 200, but its checked answers passed below
    min_pass: the risk model's drill observations (what verifies a fallback) must not count it."""
    from monitor.store.queries import drill_observations

    run = {"name": "garbage", "started_at": T0.timestamp(), "ended_at": T0.timestamp() + 20, "passed": False,
           "phases": [{"name": "down", "start": 0, "end": 1, "faults": [{"route": "anthropic"}]}], "timeline": []}
    garbage = {"down": {"quality": {"faulted": True, "passed": 0, "failed": 12, "min_pass": 0.8,
                                    "by_backend": {"local": [12, 0]}}}}
    good = {"down": {"quality": {"faulted": True, "passed": 11, "failed": 1, "min_pass": 0.8,
                                 "by_backend": {"local": [12, 11]}}}}
    write_drill(session=session, run=run, features=[{**_feature("chat", ["local"], ["anthropic"]), "phases": garbage},
                                                    {**_feature("search", ["local"], ["anthropic"]), "phases": good}])
    session.commit()
    seen = {o.feature: o.answered_by for o in drill_observations(session=session)}
    assert seen == {"chat": (), "search": ("local",)}
