"""Emulated history (`chaos.history`): what it writes must read back as if the monitor had written it."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from chaos.history import HistoryStats, HistoryTarget, generate_history
from monitor.store.db import make_engine, migrate
from monitor.store.models import AlertOutbox, IncidentRow, ProbeRow, RollupHour, RollupMinute, StatusSnapshot
from monitor.store.queries import availability_series, current_states, error_counts, target_summary
from monitor.store.results import write_results
from probes.result import ErrorKind, ProbeResult, Status
from tests.monitor import conftest as store_fixtures

engine = store_fixtures.engine  # the store's fixture: a fresh SQLite and a fresh PostgreSQL schema per test

END = datetime(2025, 3, 5, 10, tzinfo=UTC)
TARGETS = [HistoryTarget("claude", "anthropic"), HistoryTarget("gpt", "openai")]
SEED = 10  # two days in which both providers have outages, some posted by the vendor, some alerts dead


def _generate(engine: Engine, seed: int = SEED, **kwargs) -> HistoryStats:
    return generate_history(engine=engine, targets=TARGETS, days=2, interval_s=60, end=END, seed=seed, **kwargs)


def _count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_row_counts_and_retention(engine: Engine) -> None:
    stats = _generate(engine, raw_days=1, minute_days=0.5)
    per_target = 2 * 24 * 60
    # A probe a minute per target; raw rows for the last day only, minute rollups the last 12 hours.
    assert stats.raw_rows == _count(engine, ProbeRow.__table__)
    assert 2 * (per_target // 2 - 1) <= stats.raw_rows <= 2 * per_target // 2
    assert stats.hour_rows == _count(engine, RollupHour.__table__) == 2 * 48
    assert stats.minute_rows == _count(engine, RollupMinute.__table__)
    assert 2 * (12 * 60 - 1) <= stats.minute_rows <= 2 * 12 * 60
    with engine.connect() as conn:
        oldest_raw = conn.execute(sa.select(sa.func.min(ProbeRow.at))).scalar_one()
        hours = dict(conn.execute(sa.select(RollupHour.target, sa.func.sum(RollupHour.count)).group_by(
            RollupHour.target)).all())
    oldest_raw = oldest_raw if oldest_raw.tzinfo else oldest_raw.replace(tzinfo=UTC)
    assert END - timedelta(days=1) <= oldest_raw < END - timedelta(days=1) + timedelta(minutes=1)
    assert set(hours) == {"claude", "gpt"} and all(per_target - 1 <= n <= per_target for n in hours.values())
    assert stats.incidents == _count(engine, IncidentRow.__table__) > 0
    assert stats.alert_rows == _count(engine, AlertOutbox.__table__) > 0
    assert stats.status_rows == _count(engine, StatusSnapshot.__table__) > 0


def test_rollups_are_what_write_results_makes_of_the_raw_rows(engine: Engine) -> None:
    _generate(engine)
    with Session(engine) as session:
        stored = {(r.target, r.bucket): r for r in session.exec(sa.select(RollupHour)).scalars()}
        # The hours with failures in them, and a few without: write_results over their raw rows.
        hours = sorted(k[1] for k, r in stored.items() if r.down or r.degraded)[:10] + sorted(k[1] for k in stored)[:2]
        raw = session.exec(sa.select(ProbeRow).where(sa.or_(*(
            ProbeRow.at.between(h, h + timedelta(minutes=59, seconds=59.999999)) for h in hours)))).scalars().all()
    results = [(ProbeResult(target=r.target, provider="p", model="m", at=r.at, status=Status(r.status),
                            error_kind=ErrorKind(r.error_kind), **{f: getattr(r, f) for f in (
                                "http_status", "connect_ms", "ttfb_ms", "ttft_ms", "total_ms", "output_tokens",
                                "input_tokens", "tokens_per_s", "stream_complete", "canary_pass", "cost_usd",
                                "retry_after_s", "local", "message")}), r.confirm) for r in raw]
    reference = make_engine("sqlite://", poolclass=StaticPool)
    migrate(reference)
    with Session(reference) as session:
        write_results(session=session, results=results, region="")
        expected = {(r.target, r.bucket): r for r in session.exec(sa.select(RollupHour)).scalars()}
    reference.dispose()
    assert sum(r.down for r in expected.values()) > 0 and len(expected) >= 10
    for key, want in expected.items():
        got = stored[key]
        for f in ("count", "up", "degraded", "down", "ttft_hist", "total_hist", "errors", "tokens_per_s_n"):
            assert getattr(got, f) == getattr(want, f), (key, f)
        for f in ("cost_usd", "tokens_per_s_sum"):
            assert math.isclose(getattr(got, f), getattr(want, f), rel_tol=1e-9, abs_tol=1e-12), (key, f)


def test_raw_and_rollup_answers_agree(engine: Engine) -> None:
    _generate(engine)
    since, until = END - timedelta(hours=30), END  # whole hours: every source covers the same span
    with Session(engine) as session:
        answers = {s: target_summary(session=session, since=since, until=until, source=s)
                   for s in ("raw", "minute", "hour")}
        kinds = {s: error_counts(session=session, since=since, until=until, source=s) for s in ("raw", "hour")}
        series = {s: availability_series(session=session, target="gpt", since=since, until=until,
                                         step=timedelta(hours=1), source=s) for s in ("raw", "hour")}
    raw = answers["raw"]
    assert [a.target for a in raw] == ["claude", "gpt"]
    for source in ("minute", "hour"):
        for r, a in zip(raw, answers[source], strict=True):
            assert (a.count, a.up, a.degraded, a.down, a.errors) == (r.count, r.up, r.degraded, r.down, r.errors)
            assert a.availability == r.availability and a.count >= 30 * 60 - 1
            # Percentiles from the histograms: within one bucket (< 15 %) of the exact ones.
            assert a.ttft_p50 == pytest.approx(r.ttft_p50, rel=0.15)
    assert [(k["target"], k["error_kind"], k["count"]) for k in kinds["raw"]] == \
        [(k["target"], k["error_kind"], k["count"]) for k in kinds["hour"]]
    assert [b["availability"] for b in series["raw"]] == [b["availability"] for b in series["hour"]]
    assert min(a.availability for a in raw) < 1.0  # the outages are in there


def test_incidents_coincide_with_failing_probes(engine: Engine) -> None:
    _generate(engine)
    with Session(engine) as session:
        rows = session.exec(sa.select(ProbeRow.target, ProbeRow.at, ProbeRow.status).order_by(ProbeRow.at)).all()
        incidents = session.exec(sa.select(IncidentRow)).scalars().all()
        states = current_states(session=session)
    assert {i.target for i in incidents} == {"claude", "gpt"} and {i.state for i in incidents} == {"down", "degraded"}
    inside: dict[bool, list[str]] = defaultdict(list)
    for target, at, status in rows:
        hit = any(i.target == target and i.opened_at <= at < (i.closed_at or END) for i in incidents)
        inside[hit].append(status)
    for i in incidents:
        # The detector dates an incident from the first result of its evidence: a failing or slow probe.
        first = next(r for r in rows if r.target == i.target and r.at == i.opened_at)
        assert i.state == "degraded" or first.status == "down"
        assert i.closed_at is None or i.closed_at > i.opened_at
        assert i.cause.get("rule") in ("failures", "degraded_results", "error_rate", "latency", "recovered")
    up = {k: v.count("up") / len(v) for k, v in inside.items()}
    assert up[False] > 0.99 and up[True] < 0.9  # random noise outside, the outages inside
    assert {s.target for s in states} == {"claude", "gpt"} and all(s.latest is not None for s in states)


def test_vendor_posts_and_alerts_match_the_incidents(engine: Engine) -> None:
    _generate(engine)
    with Session(engine) as session:
        incidents = session.exec(sa.select(IncidentRow)).scalars().all()
        snapshots = session.exec(sa.select(StatusSnapshot)).scalars().all()
        alerts = session.exec(sa.select(AlertOutbox)).scalars().all()
    led = [i for i in incidents if i.lead_time_s is not None]
    assert led
    posts = {inc["id"]: inc["first_post_at"] for s in snapshots for inc in s.incidents}
    for i in led:
        assert i.lead_time_s == pytest.approx((i.vendor_first_post_at - i.opened_at).total_seconds())
        assert abs(i.lead_time_s) <= 2 * 3600
        assert i.vendor_first_post_at.isoformat() in posts.values()
    assert {s.provider for s in snapshots} == {"anthropic", "openai"}
    assert {s.indicator for s in snapshots} >= {"none", "minor"}
    triggered = {m["incident_id"] for a in alerts if a.rule in ("down", "degraded") for m in a.payload["members"]}
    assert triggered == {i.id for i in incidents}
    resolved = {m["incident_id"] for a in alerts if a.rule == "recovered" for m in a.payload["members"]}
    assert resolved <= {i.id for i in incidents if i.closed_at is not None} and resolved
    assert {a.state for a in alerts} >= {"sent", "dead"}
    for a in alerts:
        assert a.dedup_key.startswith("airisk-incident-")
        assert (a.sent_at is not None) == (a.state == "sent")
        assert a.state != "dead" or a.last_error


def test_same_seed_same_history_other_seed_other_history() -> None:
    def history(seed: int) -> tuple[list, list]:
        eng = make_engine("sqlite://", poolclass=StaticPool)
        migrate(eng)
        _generate(eng, seed=seed)
        with eng.connect() as conn:
            raw = conn.execute(sa.select(*[c for c in ProbeRow.__table__.c if c.name != "id"])
                               .order_by(ProbeRow.at)).all()
            inc = conn.execute(sa.select(IncidentRow.target, IncidentRow.opened_at, IncidentRow.closed_at,
                                         IncidentRow.cause).order_by(IncidentRow.opened_at)).all()
        eng.dispose()
        return raw, inc

    first = history(SEED)
    assert history(SEED) == first
    assert history(SEED + 1)[0] != first[0]


def test_refuses_a_window_that_already_has_history() -> None:
    engine = make_engine("sqlite://", poolclass=StaticPool)
    migrate(engine)
    _generate(engine, incidents=False)
    with pytest.raises(ValueError, match="'claude' already has history"):
        _generate(engine, incidents=False)
    with pytest.raises(ValueError, match="naive end"):
        generate_history(engine=engine, targets=TARGETS, days=1, interval_s=60, end=datetime(2025, 3, 5))


def test_public_face() -> None:
    import chaos.history as package

    assert package.__all__ == sorted(package.__all__)
    assert all(hasattr(package, name) for name in package.__all__)
