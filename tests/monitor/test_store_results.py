"""Writing results: raw rows and rollups agree, concurrent monitors lose nothing, retention keeps history."""

from __future__ import annotations

import math
import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.store import histogram
from monitor.store.models import (
    CapturedCaseRow,
    ProbeRow,
    ProxyRequestRow,
    RollupHour,
    RollupMinute,
    StatusSnapshot,
    TargetRow,
)
from monitor.store.proxylog import write_proxy_requests
from monitor.store.queries import target_summary
from monitor.store.results import prune, upsert_targets, write_results
from probes.result import ErrorKind
from probes.target import Target
from tests.monitor.conftest import T0, Database, make_result


def _random_results(seed: int, n: int, minutes: int = 180, targets: tuple[str, ...] = ("openai", "anthropic")):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        at = T0 + timedelta(seconds=rng.uniform(0, minutes * 60))
        status = rng.choices(["up", "degraded", "down"], weights=[90, 4, 6])[0]
        kind = {"up": ErrorKind.OK, "degraded": ErrorKind.WRONG_ANSWER,
                "down": rng.choice([ErrorKind.SERVER_ERROR, ErrorKind.RATE_LIMITED, ErrorKind.FIRST_TOKEN_TIMEOUT])}
        ttft = None if kind[status] is ErrorKind.FIRST_TOKEN_TIMEOUT else rng.lognormvariate(6, 0.5)
        total = (ttft or 0) + rng.lognormvariate(6.5, 0.4)
        out.append((make_result(rng.choice(targets), at, status, kind=kind[status], ttft=ttft, total=total,
                                cost=0.0001, tps=rng.uniform(20, 80)), rng.random() < 0.05))
    return out


def _rollup_totals(session: Session, model, region: str | None = None) -> Counter:
    q = sa.select(model)
    if region is not None:
        q = q.where(model.region == region)
    totals: Counter = Counter()
    for row in session.exec(q).scalars():
        totals.update(count=row.count, up=row.up, degraded=row.degraded, down=row.down,
                      ttft=sum(row.ttft_hist), total=sum(row.total_hist))
        totals.update({f"err:{k}": v for k, v in row.errors.items()})
    return totals


def test_upsert_targets_stores_no_secret_and_updates(session: Session) -> None:
    t = Target(name="gpt", provider="openai", dialect="openai", base_url="https://api.openai.com/v1", model="m1",
               key_env="OPENAI_API_KEY", headers={"X-Org": "o"})
    assert upsert_targets(session=session, targets=[t]) == 1
    upsert_targets(session=session, targets=[Target(**{**_fields(t), "model": "m2"})])
    session.commit()
    rows = session.exec(sa.select(TargetRow)).scalars().all()
    assert [(r.name, r.model) for r in rows] == [("gpt", "m2")]
    assert set(TargetRow.__table__.columns.keys()) == {"name", "provider", "model", "dialect", "base_url",
                                                       "local", "updated_at"}


def _fields(t: Target) -> dict:
    return {f: getattr(t, f) for f in t.__dataclass_fields__}


def test_rollups_equal_the_raw_aggregates(session: Session) -> None:
    results = _random_results(seed=1, n=600)
    for i in range(0, len(results), 97):  # uneven batches: a bucket is updated by several of them
        write_results(session=session, results=results[i : i + 97], region="eu")
        session.commit()
    scheduled = [r for r, confirm in results if not confirm]
    assert session.exec(sa.select(sa.func.count()).select_from(ProbeRow)).scalar() == 600
    expect = Counter(count=len(scheduled))
    expect.update(r.status.value for r in scheduled)
    expect["ttft"] = sum(r.ttft_ms is not None for r in scheduled)
    expect["total"] = sum(r.status.value != "down" for r in scheduled)
    expect.update(f"err:{r.error_kind.value}" for r in scheduled if r.error_kind is not ErrorKind.OK)
    assert _rollup_totals(session, RollupMinute) == expect
    assert _rollup_totals(session, RollupHour) == expect
    # Per target, over the same whole hours: the same counts whichever table answers, and
    # percentiles from the histograms within a bucket of the exact ones.
    since, until = T0, T0 + timedelta(hours=3)
    by_source = {s: target_summary(session=session, since=since, until=until, source=s)
                 for s in ("raw", "minute", "hour")}
    for raw, minute, hour in zip(*by_source.values(), strict=True):
        for agg in (minute, hour):
            assert (agg.target, agg.count, agg.up, agg.degraded, agg.down, agg.errors) == (
                raw.target, raw.count, raw.up, raw.degraded, raw.down, raw.errors)
            assert agg.cost_usd == pytest.approx(raw.cost_usd)
            assert agg.tokens_per_s == pytest.approx(raw.tokens_per_s)
            for name in ("ttft_p50", "ttft_p95", "ttft_p99", "total_p50", "total_p95", "total_p99"):
                assert getattr(agg, name) == pytest.approx(getattr(raw, name), rel=0.15), name
        # Whole hours: minute and hour rollups hold the same histograms, so the same percentiles.
        assert _exact_fields(minute) == _exact_fields(hour)


def _exact_fields(summary) -> dict:
    return {f: getattr(summary, f) for f in summary.__dataclass_fields__ if f not in ("source", "cost_usd",
                                                                                      "tokens_per_s")}


def test_confirmation_probes_are_stored_but_not_counted(session: Session) -> None:
    write_results(session=session, region="", results=[
        (make_result(at=T0, status="down"), False),
        (make_result(at=T0 + timedelta(seconds=5), status="down"), True),
        (make_result(at=T0 + timedelta(seconds=10), status="down"), True),
        (make_result(at=T0 + timedelta(seconds=30)), False),
    ])
    session.commit()
    assert session.exec(sa.select(sa.func.count()).select_from(ProbeRow)).scalar() == 4
    (summary,) = target_summary(session=session, since=T0, until=T0 + timedelta(minutes=1))
    assert (summary.count, summary.availability) == (2, 0.5)


def test_naive_timestamps_are_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="naive"):
        write_results(session=session, results=[(make_result(at=T0.replace(tzinfo=None)), False)], region="")


def _write_in_thread(engine: Engine, results, region: str, batch: int, errors: list) -> None:
    try:
        for i in range(0, len(results), batch):
            with Session(engine) as s:
                write_results(session=s, results=results[i : i + batch], region=region)
                s.commit()
    except Exception as exc:  # surfaced by the test, not lost in the thread
        errors.append(exc)


@pytest.mark.parametrize("regions", [("eu", "us"), ("eu", "eu")], ids=["different-regions", "same-region"])
def test_concurrent_writers_produce_exact_totals(database: Database, regions: tuple[str, str]) -> None:
    # Two monitors writing the same targets and the same minutes at once, each with its own engine.
    results = [_random_results(seed=s, n=400, minutes=5) for s in (10, 11)]
    errors: list = []
    threads = [threading.Thread(target=_write_in_thread, args=(database.engine(), res, reg, 20, errors))
               for res, reg in zip(results, regions, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with Session(database.engine()) as s:
        assert s.exec(sa.select(sa.func.count()).select_from(ProbeRow)).scalar() == 800
        for region in set(regions):
            mine = [r for res, reg in zip(results, regions, strict=True) if reg == region for r, c in res if not c]
            for model in (RollupMinute, RollupHour):
                totals = _rollup_totals(s, model, region)
                assert totals["count"] == len(mine)
                assert totals["up"] == sum(r.status.value == "up" for r in mine)
                assert totals["ttft"] == sum(r.ttft_ms is not None for r in mine)


def test_prune_drops_raw_and_minutes_but_keeps_hours(session: Session) -> None:
    now = T0 + timedelta(days=20)
    old = [(make_result(at=T0 + timedelta(minutes=i), status="down" if i % 8 == 0 else "up"), False)
           for i in range(0, 120, 2)]
    recent = [(make_result(at=now - timedelta(minutes=30 - i)), False) for i in range(10)]
    write_results(session=session, results=old + recent, region="eu")
    session.add(StatusSnapshot(provider="openai", fetched_at=now - timedelta(days=31), indicator="none"))
    # Captured requests (opt-in, may hold personal data) go after capture_days (default 7).
    session.add(CapturedCaseRow(at=now - timedelta(days=8), feature="chat", answer="old"))
    session.add(CapturedCaseRow(at=now - timedelta(days=6), feature="chat", answer="recent"))
    session.commit()
    deleted = prune(session=session, now=now)
    session.commit()
    assert deleted == {"probe_result": 60, "rollup_minute": 60, "rollup_hour": 0, "status_snapshot": 1,
                       "proxy_request": 0, "captured_case": 1}
    assert [r.answer for r in session.exec(select(CapturedCaseRow))] == ["recent"]
    assert prune(session=session, now=now, capture_days=1)["captured_case"] == 1
    # Twenty days later, the old two hours still read right, from the hour rollups.
    (summary,) = target_summary(session=session, since=T0, until=T0 + timedelta(hours=2))
    assert (summary.source, summary.count, summary.availability) == ("hour", 60, 0.75)
    assert summary.ttft_p50 == pytest.approx(100.0, rel=0.15)
    # And a year on, the hours go too.
    assert prune(session=session, now=T0 + timedelta(days=400))["rollup_hour"] == 3


def test_prune_drops_the_proxy_request_log_past_its_retention(session: Session) -> None:
    """The fault proxy writes a row per request (`airisk proxy --store`): kept as long as raw results
    unless ``proxy_days`` says otherwise, never for ever."""
    now = T0 + timedelta(days=30)
    ages = (0.5, 6, 13.9, 14.1, 29)
    write_proxy_requests(session=session, source="test", entries=[
        {"at": (now - timedelta(days=age)).timestamp(), "route": "openai", "status": 200} for age in ages])
    session.commit()

    def kept() -> list[float]:
        rows = session.exec(sa.select(ProxyRequestRow.at)).scalars()
        return sorted(round((now - at).total_seconds() / 86400, 1) for at in rows)

    assert prune(session=session, now=now)["proxy_request"] == 2  # raw_days (14) by default
    session.commit()
    assert kept() == [0.5, 6.0, 13.9]
    assert prune(session=session, now=now, raw_days=30, proxy_days=7)["proxy_request"] == 1
    session.commit()
    assert kept() == [0.5, 6.0]


def test_rollup_histograms_use_the_shared_edges(session: Session) -> None:
    write_results(session=session, results=[(make_result(ttft=250.0, total=900.0), False)], region="")
    session.commit()
    row = session.exec(sa.select(RollupMinute)).scalar_one()
    assert len(row.ttft_hist) == histogram.N_BUCKETS
    assert row.ttft_hist[histogram.bucket_of(250.0)] == 1
    assert row.total_hist[histogram.bucket_of(900.0)] == 1
    assert row.bucket == T0


def test_rollup_statements_do_not_multiply_with_batch_sizes(engine: Engine) -> None:
    # Batches of every size from 1 to 60 targets (the monitor's batches vary so). A statement per
    # size was a new prepared statement in every pooled SQLite connection and a new entry in
    # SQLAlchemy's compiled cache: the monitor's memory grew for hours. The texts stay few.
    texts: set[str] = set()
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cur, text, *rest: texts.add(text))
    for size in range(1, 61):
        at = T0 + timedelta(minutes=size)
        with Session(engine) as s:
            write_results(session=s, results=[(make_result(f"t{i}", at), False) for i in range(size)], region="")
            s.commit()
    rollup_texts = [t for t in texts if "rollup" in t]
    # Per rollup table: one INSERT, one UPDATE, and the SELECT padded to 7 sizes (1, 2, 4, ..., 64).
    assert len(rollup_texts) <= 2 * (1 + 1 + 7), len(rollup_texts)
    with Session(engine) as s:
        totals = _rollup_totals(s, RollupMinute)
    assert totals["count"] == sum(range(1, 61))


_number = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(ttft=_number, total=_number, tps=_number, cost=_number, tokens=_number, status=_number,
       message=st.text(max_size=30))
@example(ttft=None, total=None, tps=float("nan"), cost=None, tokens=2**40, status=None, message="a\x00\ud800")
def test_any_figures_and_message_a_probe_reports_are_stored(session: Session, ttft, total, tps, cost, tokens,
                                                           status, message) -> None:
    """Whatever a provider made the probe report, the row is stored (not set aside: lost to every
    query) and the rollups' sums stay numbers (one NaN would poison the bucket for good)."""
    as_int = tokens if isinstance(tokens, int) else None
    result = make_result(ttft=ttft, total=total, tps=tps, cost=cost, output_tokens=as_int, input_tokens=as_int,
                         http_status=status if isinstance(status, int) else None, message=message)
    try:
        assert write_results(session=session, results=[(result, False)], region="eu") == 1
        session.flush()
        [row] = session.exec(sa.select(ProbeRow)).scalars().all()
        assert "\x00" not in row.message
        [minute] = session.exec(sa.select(RollupMinute)).scalars().all()
        assert math.isfinite(minute.tokens_per_s_sum) and math.isfinite(minute.cost_usd)
    finally:
        session.rollback()
