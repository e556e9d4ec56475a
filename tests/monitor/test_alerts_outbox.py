"""The outbox on SQLite and PostgreSQL: dedup on enqueue, leased claims, fenced marks, backoff, order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.alerts import AlertEvent, claim_due, enqueue, mark_failed, mark_sent, release
from monitor.config.alerts import RetryConfig
from tests.monitor.test_alerts_harness import alert_database

T0 = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)
RETRY = RetryConfig.model_validate({"first_delay": "10s", "max_delay": "60s", "max_attempts": 5,
                                    "max_age": "1h"})


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(n: int, channel: str = "hook", when: datetime = T0) -> AlertEvent:
    return AlertEvent(channel=channel, rule="down", action="trigger", event_key=f"down:p:{n}:{channel}",
                      dedup_key=f"airisk-incident-{n}", provider="p", title=f"p: t{n} is DOWN",
                      severity="critical", at=when)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    with alert_database(request.param, tmp_path) as database:
        yield database


def run(db, work):
    """``work(session)`` in one committed transaction."""
    with Session(db.engines[0], expire_on_commit=False) as session, session.begin():
        return work(session)


def put(db, events, now=T0) -> int:
    return run(db, lambda s: enqueue(session=s, events=events, now=now))


def test_enqueueing_the_same_events_twice_keeps_one_row_each(db):
    events = [event(1), event(2), event(1, channel="team")]
    assert put(db, events) == 3
    assert put(db, [*events, event(3)]) == 1
    rows = db.rows()
    assert [(r.channel, r.event_key, r.state, r.attempts) for r in rows] == [
        ("hook", "down:p:1:hook", "pending", 0), ("hook", "down:p:2:hook", "pending", 0),
        ("team", "down:p:1:team", "pending", 0), ("hook", "down:p:3:hook", "pending", 0)]
    assert rows[0].payload["title"] == "p: t1 is DOWN" and rows[0].created_at == rows[0].next_attempt_at == T0
    assert AlertEvent.from_row(rows[0]) == event(1)


def test_a_claim_is_a_lease(db):
    put(db, [event(1), event(2)])
    put(db, [event(3)], now=at(100))
    claimed = run(db, lambda s: claim_due(session=s, now=at(0), limit=10, lease=60))
    assert [r.event_key for r in claimed] == ["down:p:1:hook", "down:p:2:hook"]  # the third is not due yet
    assert all(r.attempts == 1 and r.next_attempt_at == at(60) for r in claimed)
    assert run(db, lambda s: claim_due(session=s, now=at(30), limit=10, lease=60)) == []
    # The claimant died: at the end of the lease the rows are due again, and its late marks are ignored.
    again = run(db, lambda s: claim_due(session=s, now=at(61), limit=1, lease=60))
    assert [(r.event_key, r.attempts) for r in again] == [("down:p:1:hook", 2)]
    assert run(db, lambda s: mark_sent(session=s, row=claimed[0], now=at(62))) is False
    assert run(db, lambda s: mark_sent(session=s, row=again[0], now=at(62))) is True
    assert run(db, lambda s: mark_sent(session=s, row=again[0], now=at(63))) is False  # already sent
    sent = db.rows()[0]
    assert (sent.state, sent.sent_at, sent.attempts) == ("sent", at(62), 2)


def test_failures_back_off_then_give_up(db):
    put(db, [event(1)])
    delays, now = [], at(0)
    for _ in range(5):
        (row,) = run(db, lambda s, now=now: claim_due(session=s, now=now, limit=5, lease=30))
        state = run(db, lambda s, row=row, now=now: mark_failed(session=s, row=row, retryable=True, error="HTTP 503",
                                                                 now=now, retry=RETRY))
        nxt = db.rows()[0].next_attempt_at
        delays.append((nxt - now).total_seconds() if state == "pending" else state)
        now = nxt
    assert delays == [10, 20, 40, 60, "dead"]  # doubling, capped at 60s, dead after max_attempts (5)
    assert db.rows()[0].last_error == "HTTP 503"


def test_not_retryable_or_too_old_is_dead_at_once_and_errors_are_redacted(db):
    put(db, [event(1), event(2, channel="other")])
    first, second = run(db, lambda s: claim_due(session=s, now=at(0), limit=5, lease=30))
    secret = "https://hooks.example.com/T0/B0/tok0123456789abcdef"
    error = f"HTTP 404: no hook {secret} " + "x" * 1000
    assert run(db, lambda s: mark_failed(session=s, row=first, retryable=False, error=error, now=at(1),
                                         retry=RETRY, secrets=[secret])) == "dead"
    assert run(db, lambda s: mark_failed(session=s, row=second, retryable=True, error="timeout", now=at(3600),
                                         retry=RETRY)) == "dead"
    dead = db.rows()[0]
    assert dead.last_error.startswith("HTTP 404: no hook [redacted] xxx") and len(dead.last_error) == 500
    assert "tok0123456789abcdef" not in dead.last_error


def test_a_row_waits_behind_an_earlier_row_of_its_channel(db):
    put(db, [event(1), event(2), event(3, channel="other")])
    rows = run(db, lambda s: claim_due(session=s, now=at(0), limit=10, lease=30))
    # The first failed: the second is handed back untried, and must not overtake it.
    run(db, lambda s: mark_failed(session=s, row=rows[0], retryable=True, error="503", now=at(1), retry=RETRY))
    assert run(db, lambda s: release(session=s, row=rows[1], now=at(1))) is True
    run(db, lambda s: mark_sent(session=s, row=rows[2], now=at(1)))
    assert db.rows()[1].attempts == 0  # a handed-back row's try is not counted
    assert run(db, lambda s: claim_due(session=s, now=at(5), limit=10, lease=30)) == []
    # A channel held up behind a failure does not hold up the others, however many rows it has.
    put(db, [event(n) for n in range(10, 20)] + [event(4, channel="other")], now=at(2))
    (other,) = run(db, lambda s: claim_due(session=s, now=at(5), limit=3, lease=30))
    assert other.event_key == "down:p:4:other"
    later = run(db, lambda s: claim_due(session=s, now=at(11), limit=3, lease=30))
    assert [r.event_key for r in later] == ["down:p:1:hook", "down:p:2:hook", "down:p:10:hook"]


def test_concurrent_claims_skip_locked_rows_on_postgresql(tmp_path):
    with alert_database("postgresql", tmp_path) as db:
        put(db, [event(n, channel=f"c{n}") for n in range(6)])
        engine_a, engine_b = db.engine(), db.engine()
        with Session(engine_a) as a, Session(engine_b) as b:
            first = claim_due(session=a, now=at(0), limit=3, lease=30)  # not committed: rows stay locked
            # Without SKIP LOCKED, B would wait on A's locks: fail fast instead of hanging.
            b.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            second = claim_due(session=b, now=at(0), limit=10, lease=30)
            a.commit()
            b.commit()
        assert {r.id for r in first}.isdisjoint(r.id for r in second)
        assert len(first) + len(second) == 6
        with Session(engine_a) as s:
            assert s.scalar(sa.text("SELECT count(*) FROM alert_outbox WHERE attempts = 1")) == 6


def test_a_concurrent_claim_does_not_overtake_rows_another_dispatcher_holds(tmp_path):
    with alert_database("postgresql", tmp_path) as db:
        put(db, [event(n) for n in range(6)])  # one channel
        with Session(db.engine()) as a, Session(db.engine()) as b:
            first = claim_due(session=a, now=at(0), limit=3, lease=30)  # rows 0-2, locked, not committed
            b.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            second = claim_due(session=b, now=at(0), limit=10, lease=30)
            a.commit()
            b.commit()
        assert [r.event_key for r in first] == [f"down:p:{n}:hook" for n in range(3)]
        assert second == []  # rows 3-5 wait for 0-2, which B could not see were taken
