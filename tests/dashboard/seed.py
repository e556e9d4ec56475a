"""A small, realistic history for the dashboard tests, relative to ``now``.

Three targets (openai and anthropic hosted, the local model owned); anthropic DOWN for the last 20 minutes
(an open incident); an openai incident two days ago that the vendor posted about 5 minutes after we
detected it; a drill that broke anthropic (chat survived on the local model, description did not);
alerts to two channels (one delivered, one given up); a proxy log showing chat calling gemini, which its
chain does not declare.

`seed_quality` adds eval runs and capacity searches for `OWN_CONFIG` (the "Can we own it?" page); `seed`
leaves them out, so the risk figures the other pages assert do not move with them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from monitor.quality.figures import CapacityFigure
from monitor.store import (
    AlertOutbox,
    close_incident,
    open_incident,
    record_status,
    set_vendor_post,
    upsert_targets,
    write_results,
)
from monitor.store.drills import write_drill
from monitor.store.models import EvalAnswerRow
from monitor.store.proxylog import write_proxy_requests
from monitor.store.quality import finish_run, record_answers, record_capacity, start_or_resume
from probes.result import ErrorKind
from probes.target import Target
from tests.monitor.conftest import make_result

CONFIG = """
targets:
  - {provider: openai}
  - {provider: anthropic}
local_model: {}
features:
  chat:
    criticality: high
    latency_budget: {first_token: 2s}
    chain: [{backend: anthropic}, {backend: local}]
  description:
    chain: [{backend: openai}]
  tags:
    chain: [{backend: openai}, {degraded: heuristic, quality: 0.4}]
"""

ANTHROPIC_DOWN_FOR = timedelta(minutes=20)
OPENAI_INCIDENT_AGO = timedelta(days=2)
VENDOR_LEAD_S = 300.0


def seed(session: Session, now: datetime) -> dict[str, int]:
    """Writes the history; returns the ids tests refer to (``open_incident``, ``closed_incident``, ``drill``)."""
    upsert_targets(session=session, now=now, targets=[
        Target.from_provider("openai"), Target.from_provider("anthropic"),
        Target.from_provider("local", base_url="http://user:hunter2@127.0.0.1:8011/v1")])
    results = []
    # The last three hours, a probe a minute per target.
    start = now - timedelta(hours=3)
    for i in range(180):
        at = start + timedelta(minutes=i, seconds=5)
        results.append((make_result("local", at, ttft=40.0 + i % 7, total=300.0, cost=0.0, canary_pass=True), False))
        if i % 30 == 7:
            results.append((make_result("openai", at, "down", kind=ErrorKind.RATE_LIMITED, total=20.0), False))
        else:
            results.append((make_result("openai", at, ttft=300.0 + 10 * (i % 10), total=900.0, cost=0.002,
                                        canary_pass=True), False))
        if at >= now - ANTHROPIC_DOWN_FOR:
            results.append((make_result("anthropic", at, "down", kind=ErrorKind.OVERLOADED, total=50.0,
                                        cost=0.0), False))
        else:
            results.append((make_result("anthropic", at, ttft=500.0, total=1200.0, cost=0.003, canary_pass=True),
                            False))
    # Three days before that, every 10 minutes: a longer history for the 7-day views.
    for i in range(3 * 24 * 6):
        at = start - timedelta(minutes=10 * (i + 1))
        for target in ("openai", "anthropic"):
            results.append((make_result(target, at, ttft=400.0, total=1000.0, canary_pass=True), False))
    write_results(session=session, results=results, region="")

    down_at = now - ANTHROPIC_DOWN_FOR
    still_open = open_incident(session=session, target="anthropic", provider="anthropic", region="", state="down",
                               cause={"rule": "failures", "failures": 4, "threshold": 4,
                                      "kinds": {"overloaded": 4}}, at=down_at)
    opened = now - OPENAI_INCIDENT_AGO
    closed = open_incident(session=session, target="openai", provider="openai", region="", state="down",
                           cause={"rule": "failures", "kinds": {"server_error": 5}}, at=opened)
    close_incident(session=session, incident_id=closed.id, at=opened + timedelta(minutes=30))
    set_vendor_post(session=session, incident_id=closed.id, first_post_at=opened + timedelta(seconds=VENDOR_LEAD_S))
    record_status(session=session, provider="anthropic", fetched_at=now - timedelta(minutes=1), indicator="major",
                  description="Elevated errors on Claude API")

    t0 = (now - timedelta(hours=5)).timestamp()
    phases = [{"name": "baseline", "start": t0, "end": t0 + 20, "faults": []},
              {"name": "anthropic-down", "start": t0 + 20, "end": t0 + 50,
               "faults": [{"route": "anthropic", "type": "overloaded", "probability": 1.0}]},
              {"name": "recovery", "start": t0 + 50, "end": t0 + 60, "faults": []}]
    timeline = [{"s": s, "feature": f, "n": 4, "ok": 4 if (s < 20 or s >= 50 or f == "chat") else 0, "deg": 0,
                 "p50_ms": 800.0 if 20 <= s < 50 and f == "chat" else 300.0}
                for s in range(60) for f in ("chat", "description")]
    drill = write_drill(session=session, run={
        "name": "anthropic-outage", "started_at": t0, "ended_at": t0 + 60, "passed": False, "aborted": None,
        "phases": phases, "timeline": timeline}, features=[
        {"feature": "chat", "expected": "survives", "verdict": "resilient", "meets": True, "requests": 120,
         "ok_rate": 1.0, "answered_rate": 1.0, "p50_ms": 800.0, "p95_ms": 1400.0, "recovery_s": 1.0,
         "faulted_routes": ["anthropic"], "answered_by": ["local"], "backends": {}, "phases": {}},
        {"feature": "description", "expected": "survives", "verdict": "broken", "meets": False, "requests": 120,
         "ok_rate": 0.0, "answered_rate": 0.0, "p50_ms": 50.0, "p95_ms": 90.0, "recovery_s": 2.0,
         "faulted_routes": ["anthropic"], "answered_by": [], "backends": {}, "phases": {}}])
    write_proxy_requests(session=session, entries=[
        {"at": (now - timedelta(hours=1)).timestamp(), "route": "gemini", "feature": "chat", "status": 200}])
    # The drill saw chat's local fallback answer; an eval proved its answers (200 of 200: an AI fallback
    # counts only as far as its pass rate's lower bound, 98.1% here).
    _eval_run(session, now - timedelta(hours=4), "chat", {"local": ([True] * 200, 150.0, 1200.0, 0.0)})

    session.add(AlertOutbox(channel="oncall", rule="down", event_key="down:1:oncall", dedup_key="airisk-incident-1",
                            target="anthropic", provider="anthropic", state="sent", attempts=1,
                            created_at=down_at + timedelta(seconds=5), next_attempt_at=down_at,
                            sent_at=down_at + timedelta(seconds=6),
                            payload={"action": "trigger", "title": "anthropic: anthropic is DOWN",
                                     "severity": "critical"}))
    session.add(AlertOutbox(channel="team-slack", rule="down", event_key="down:1:team", dedup_key="airisk-incident-1",
                            target="anthropic", provider="anthropic", state="dead", attempts=8,
                            created_at=down_at + timedelta(seconds=5), next_attempt_at=down_at,
                            last_error="HTTP 404 from Slack: no_service",
                            payload={"action": "trigger", "title": "anthropic: anthropic is DOWN",
                                     "severity": "critical"}))
    session.commit()
    return {"open_incident": still_open.id, "closed_incident": closed.id, "drill": drill}


# "Can we own it?": the same targets, each feature with an eval set, and the local model weighed on each.
OWN_CONFIG = """
targets:
  - {provider: openai}
  - {provider: anthropic}
local_model: {cost_per_hour: 0.5}
features:
  chat:
    criticality: high
    latency_budget: {first_token: 2s, total: 4s}
    chain: [{backend: anthropic}, {backend: local}]
    eval: evals/chat.jsonl
    min_quality: 0.7
    rate: 5
  description:
    chain: [{backend: openai}]
    candidates: [local]
    eval: evals/description.jsonl
    min_quality: 0.8
    rate: 1
  tags:
    chain: [{backend: openai}, {degraded: heuristic, quality: 0.4}]
    candidates: [local]
    eval: evals/tags.jsonl
  search:
    latency_budget: {total: 3s}
    chain: [{backend: openai}, {backend: local}]
    eval: evals/search.jsonl
    rate: 0.5
  summary:
    chain: [{backend: openai}]
"""
"""chat on local: ownable with more capacity (holds 2 requests/s of 5: needs 2.5×); description on local:
not with this model (12 of 28 judged pass, min_quality 80%); tags on local: not measured (no capacity search,
no rate); search on local: ownable now (holds 3 of 0.5); summary: no owned backend, no eval set."""

CHAT_CAPACITY_STEPS = (
    {"rate": 0.5, "p95_ms": 900.0, "pass_rate": 0.93, "ok": True, "requests": 30, "errors": 0},
    {"rate": 1.0, "p95_ms": 1100.0, "pass_rate": 0.93, "ok": True, "requests": 60, "errors": 0},
    {"rate": 2.0, "p95_ms": 1900.0, "pass_rate": 0.9, "ok": True, "requests": 120, "errors": 1},
    {"rate": 3.0, "p95_ms": 4800.0, "pass_rate": 0.9, "ok": False, "requests": 180, "errors": 4},
    {"rate": 4.0, "p95_ms": 9000.0, "pass_rate": 0.7, "ok": False, "requests": 240, "errors": 30},
)


def _eval_run(session: Session, now: datetime, feature: str,
              backends: dict[str, tuple[list[bool | str | None], float, float, float | None]]) -> None:
    """One finished run of ``feature``: per backend, each case's outcome (True passed, False failed, None
    unjudged, a string: the error kind), its TTFT and total time (ms, varied a little per case) and cost."""
    n = len(next(iter(backends.values()))[0])
    run_id, _ = start_or_resume(session, feature=feature, cases_file=f"evals/{feature}.jsonl",
                                cases_hash=f"hash-{feature}", backends=list(backends), cases=n)
    rows = []
    for backend, (outcomes, ttft, total, cost) in backends.items():
        local = backend == "local"
        for i, outcome in enumerate(outcomes):
            error = outcome if isinstance(outcome, str) else None
            rows.append(EvalAnswerRow(
                run_id=run_id, feature=feature, backend=backend, case_id=f"{feature}-{i:02d}", at=now,
                error_kind=error, answer="" if error else f"answer {i}",
                passed=None if error else outcome,
                checks=[] if error else [{"type": "contains", "passed": outcome, "score": 1.0 if outcome else 0.0,
                                          "reason": "seeded"}],
                ttft_ms=None if error else ttft + 10 * (i % 5), total_ms=None if error else total + 20 * (i % 5),
                input_tokens=120, output_tokens=None if error else 60,
                cost_usd=None if cost is None or error else cost, local=local))
    record_answers(session, rows)
    finish_run(session, run_id, at=now)


def seed_quality(session: Session, now: datetime) -> None:
    """Eval runs and capacity searches for `OWN_CONFIG`'s features (see its note for the verdicts)."""
    def cases(passed: int, failed: int = 0, unjudged: int = 0, errors: tuple[str, ...] = ()) -> list:
        return [True] * passed + [False] * failed + [None] * unjudged + list(errors)

    _eval_run(session, now, "chat", {
        "anthropic": (cases(29, 1), 450.0, 1400.0, 0.0004),
        "local": (cases(27, 1, errors=("timeout", "timeout")), 150.0, 1200.0, 0.0)})
    _eval_run(session, now, "description", {
        "openai": (cases(30), 350.0, 1100.0, 0.00012),
        "local": (cases(12, 16, unjudged=2), 120.0, 900.0, 0.0)})
    _eval_run(session, now, "tags", {
        "openai": (cases(27, 3), 300.0, 700.0, 0.0001),
        "local": (cases(29, 1), 100.0, 500.0, 0.0)})
    _eval_run(session, now, "search", {
        "openai": (cases(30), 300.0, 800.0, 0.0001),
        "local": (cases(30), 100.0, 1000.0, 0.0)})
    record_capacity(session, CapacityFigure(feature="chat", backend="local", at=now, rate_rps=2.0, p95_ms=1900.0,
                                            pass_rate=0.9, budget_ms=4000.0, steps=CHAT_CAPACITY_STEPS))
    record_capacity(session, CapacityFigure(
        feature="search", backend="local", at=now, rate_rps=3.0, p95_ms=2500.0, pass_rate=1.0, budget_ms=3000.0,
        steps=({"rate": 1.0, "p95_ms": 1100.0, "pass_rate": 1.0, "ok": True, "requests": 60, "errors": 0},
               {"rate": 3.0, "p95_ms": 2500.0, "pass_rate": 1.0, "ok": True, "requests": 180, "errors": 0},
               {"rate": 4.0, "p95_ms": 3600.0, "pass_rate": 1.0, "ok": False, "requests": 240, "errors": 0})))
