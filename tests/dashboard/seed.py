"""A small, realistic history for the dashboard tests, relative to ``now``.

Three targets (openai and anthropic hosted, the local model owned); anthropic DOWN for the last 20 minutes
(an open incident); an openai incident two days ago that the vendor posted about 5 minutes after we
detected it; a drill that broke anthropic (chat survived on the local model, description did not);
alerts to two channels (one delivered, one given up); a proxy log showing chat calling gemini, which its
chain does not declare.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

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
from monitor.store.proxylog import write_proxy_requests
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
