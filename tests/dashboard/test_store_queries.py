"""The read queries the dashboard added to `monitor.store.queries` (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from monitor.store import AlertOutbox, prune, write_results
from monitor.store.drills import write_drill
from monitor.store.queries import (
    alert_log,
    canary_counts,
    drill_run,
    drill_summaries,
    known_targets,
    latency_by_target,
    latency_series,
    target_summary,
    totals_by_target,
)
from probes.result import ErrorKind
from tests.monitor.conftest import T0, make_result

HOUR = timedelta(hours=1)


def _two_targets(session: Session) -> None:
    """An hour a probe a minute: 'a' up with TTFT 10, 20, ... 600 ms, two of them wrong answers;
    'b' down for its first 15 minutes. Plus confirmation probes, which never count."""
    results = []
    for i in range(60):
        at = T0 + timedelta(minutes=i)
        if i in (5, 6):
            results.append((make_result("a", at, "degraded", kind=ErrorKind.WRONG_ANSWER, ttft=10.0 * (i + 1),
                                        canary_pass=False), False))
        else:
            results.append((make_result("a", at, ttft=10.0 * (i + 1), total=10.0 * (i + 1) + 100, canary_pass=True,
                                        cost=0.01), False))
        results.append((make_result("b", at, "down" if i < 15 else "up", cost=0.0, tps=None,
                                    canary_pass=None if i < 15 else True), False))
    results.append((make_result("b", T0 + timedelta(seconds=5), "down"), True))
    write_results(session=session, results=results, region="eu")
    session.commit()


@pytest.mark.parametrize("source", ["raw", "minute", "hour"])
def test_totals_by_target_in_one_statement(session: Session, source: str):
    _two_targets(session)
    a, b = totals_by_target(session=session, since=T0, until=T0 + HOUR, source=source)
    assert (a["target"], a["count"], a["up"], a["degraded"], a["down"]) == ("a", 60, 58, 2, 0)
    assert (b["target"], b["count"], b["down"], b["availability"]) == ("b", 60, 15, 0.75)
    assert a["cost_usd"] == pytest.approx(58 * 0.01 + 2 * 0.001) and a["tokens_per_s"] == 50.0
    assert b["tokens_per_s"] is None and a["source"] == source
    # The same counts as target_summary, which reads the rows one by one.
    (s,) = target_summary(session=session, since=T0, until=T0 + HOUR, target="a", source=source)
    assert (s.count, s.up, s.cost_usd) == (a["count"], a["up"], pytest.approx(a["cost_usd"]))


def test_latency_by_target_matches_target_summary(session: Session):
    _two_targets(session)
    for source in ("raw", "minute", "hour"):
        got = {r["target"]: r for r in latency_by_target(session=session, since=T0, until=T0 + HOUR, source=source)}
        for s in target_summary(session=session, since=T0, until=T0 + HOUR, source=source):
            for name in ("ttft_p50", "ttft_p95", "ttft_p99", "total_p50", "total_p95", "total_p99"):
                assert got[s.target][name] == pytest.approx(getattr(s, name)), (source, s.target, name)
    raw = {r["target"]: r for r in latency_by_target(session=session, since=T0, until=T0 + HOUR, source="raw")}
    assert raw["a"]["ttft_p50"] == pytest.approx(305.0)  # exact from raw rows: 10..600 ms


def test_latency_by_target_survives_short_histograms(session: Session):
    _two_targets(session)
    # A rollup row written with the column default ([]) sums as empty, beside full ones.
    from monitor.store import RollupHour
    session.add(RollupHour(target="c", region="eu", bucket=T0, count=1, up=1))
    session.commit()
    got = {r["target"]: r for r in latency_by_target(session=session, since=T0, until=T0 + HOUR, source="hour")}
    assert got["c"]["ttft_p50"] is None and got["a"]["ttft_p50"] is not None


def test_latency_series_per_bin(session: Session):
    _two_targets(session)
    bins = latency_series(session=session, target="a", since=T0, until=T0 + HOUR, step=timedelta(minutes=10))
    assert [b["count"] for b in bins] == [10] * 6 and {b["source"] for b in bins} == {"raw"}
    assert bins[0]["ttft_p50"] == pytest.approx(55.0) and bins[5]["ttft_p99"] == pytest.approx(599.1)
    hourly = latency_series(session=session, target="a", since=T0, until=T0 + HOUR, step=timedelta(minutes=10),
                            source="minute")
    for exact, approx in zip(bins, hourly, strict=True):
        assert approx["ttft_p50"] == pytest.approx(exact["ttft_p50"], rel=0.15)
    # A down target has no total time: its down minutes are empty bins, not fast ones.
    b = latency_series(session=session, target="b", since=T0, until=T0 + HOUR, step=timedelta(minutes=15))
    assert b[0]["total_p50"] is None and b[1]["total_p50"] == 400.0
    with pytest.raises(ValueError, match="step must be positive"):
        latency_series(session=session, target="a", since=T0, until=T0 + HOUR, step=timedelta(0))


def test_canary_counts_exact_from_raw_approximate_from_rollups(session: Session):
    _two_targets(session)
    raw = {c["target"]: c for c in canary_counts(session=session, since=T0, until=T0 + HOUR)}
    assert (raw["a"]["checked"], raw["a"]["passed"], raw["a"]["exact"]) == (60, 58, True)
    assert (raw["b"]["checked"], raw["b"]["pass_rate"]) == (45, 1.0)  # no answer, nothing to check
    hour = {c["target"]: c for c in canary_counts(session=session, since=T0, until=T0 + HOUR, source="hour")}
    assert (hour["a"]["checked"], hour["a"]["passed"], hour["a"]["exact"]) == (60, 58, False)
    # Once the raw rows are pruned, the rollups still answer.
    prune(session=session, now=T0 + timedelta(days=20))
    session.commit()
    assert canary_counts(session=session, since=T0, until=T0 + HOUR, source="hour")[0]["pass_rate"] == \
        pytest.approx(58 / 60)


def test_known_targets_and_alert_log(session: Session):
    from monitor.store import upsert_targets
    from probes.target import Target

    upsert_targets(session=session, now=T0, targets=[Target.from_provider("openai"), Target.from_provider("local")])
    for i, (channel, state) in enumerate([("oncall", "sent"), ("team", "dead"), ("team", "pending")]):
        session.add(AlertOutbox(channel=channel, rule="down", event_key=f"e{i}", dedup_key="d", state=state,
                                created_at=T0 + timedelta(minutes=i), next_attempt_at=T0,
                                sent_at=T0 + timedelta(minutes=i, seconds=2) if state == "sent" else None,
                                payload={"action": "trigger", "title": f"alert {i}", "severity": "critical"}))
    session.commit()
    assert [(t["name"], t["local"]) for t in known_targets(session=session)] == [("local", True), ("openai", False)]
    log = alert_log(session=session)
    assert [(a["channel"], a["state"], a["title"]) for a in log] == [
        ("team", "pending", "alert 2"), ("team", "dead", "alert 1"), ("oncall", "sent", "alert 0")]
    assert [a["title"] for a in alert_log(session=session, channel="team", since=T0 + timedelta(minutes=1),
                                          until=T0 + timedelta(minutes=2))] == ["alert 1"]
    assert len(alert_log(session=session, limit=1)) == 1


def test_drill_summaries_and_one_run(session: Session):
    for k, meets in enumerate([(True, True), (True, False)]):
        start = (T0 + timedelta(hours=k)).timestamp()
        write_drill(session=session, run={"name": f"drill-{k}", "started_at": start, "ended_at": start + 60,
                                          "passed": all(meets), "phases": [{"name": "p", "start": start,
                                                                            "end": start + 60, "faults": []}],
                                          "timeline": [{"s": 0, "feature": "x", "n": 1, "ok": 1, "deg": 0}]},
                    features=[{"feature": f, "expected": "survives", "meets": m} for f, m in zip("xy", meets,
                                                                                                strict=True)])
    session.commit()
    newest, oldest = drill_summaries(session=session)
    assert (newest["name"], newest["passed"], newest["features"], newest["failing"]) == ("drill-1", False, 2, ["y"])
    assert (oldest["name"], oldest["failing"], oldest["started_at"]) == ("drill-0", [], T0)
    assert [r["name"] for r in drill_summaries(session=session, since=T0 + timedelta(minutes=30))] == ["drill-1"]
    run = drill_run(session=session, run_id=newest["id"])
    assert run["timeline"] == [{"s": 0, "feature": "x", "n": 1, "ok": 1, "deg": 0}]
    assert [(f["feature"], f["meets"]) for f in run["features"]] == [("x", True), ("y", False)]
    assert drill_run(session=session, run_id=12345) is None
