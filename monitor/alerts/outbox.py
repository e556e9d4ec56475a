"""The alert outbox: data-access functions over `AlertOutbox` (sync sessions, keyword-only).

None of them commits: ``enqueue`` belongs in the transaction that records the alert's cause, and a
claim takes effect when the caller commits it.

A row's life: pending -> (claimed: ``next_attempt_at`` pushed out by a lease, ``attempts`` + 1)
-> sent, or back to pending with a backoff, or dead (not retryable, too many tries, too old).
The lease is what makes a crashed dispatcher harmless: its rows become due again when it ends.
``attempts`` doubles as a fencing token: a mark only applies while the row is still the claim the
caller made, so a dispatcher whose lease ran out cannot overwrite the next one's outcome.

Ordering: a row is claimable only with every earlier pending row of its channel in the same
claim, so each channel gets its alerts in the order they were raised, even with several
dispatchers (a resolve never overtakes its trigger).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.alerts.events import AlertEvent
from monitor.alerts.redact import redact
from monitor.config.alerts import RetryConfig
from monitor.store.models import AlertOutbox, utcnow

_T = AlertOutbox.__table__  # type: ignore[attr-defined]
_ERROR_LIMIT = 500


def enqueue(*, session: Session, events: Iterable[AlertEvent], now: datetime | None = None) -> int:
    """Inserts ``events`` as pending rows, created and due at ``now`` (default: the current time);
    returns how many were new.

    An event whose (channel, event_key) is already in the outbox, in any state, is skipped
    (INSERT ... ON CONFLICT DO NOTHING), so feeding the same transitions twice queues nothing.
    """
    now = now or utcnow()
    rows = [{**event.to_row(), "created_at": now, "next_attempt_at": now, "state": "pending", "attempts": 0,
             "last_error": ""} for event in events]
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"the outbox supports SQLite and PostgreSQL, not {dialect}")
    stmt = insert(_T).values(rows).on_conflict_do_nothing(index_elements=["channel", "event_key"])
    # RETURNING lists only the rows inserted; rowcount is not reliable for a multi-row insert (-1 on psycopg).
    return len(session.execute(stmt.returning(_T.c.id)).all())


@dataclass(frozen=True, slots=True)
class Delivery:
    """How far one alert's delivery got: what a dispatcher would have left in its outbox row."""

    state: str  # pending | sent | dead
    attempts: int = 0
    sent_at: datetime | None = None
    last_error: str = ""


def record_deliveries(*, session: Session, deliveries: Iterable[tuple[AlertEvent, datetime, Delivery]]) -> int:
    """Inserts outbox rows for alerts raised at some time whose delivery already went as told:
    ``(event, created_at, delivery)``; returns how many. Emulated history's (`chaos.history`), which
    has no dispatcher run: a ``pending`` row is due at its ``created_at``.

    One executemany, no ON CONFLICT: unlike `enqueue`, a (channel, event_key) already in the outbox
    is an error (``IntegrityError``), not skipped.
    """
    rows = []
    for event, created_at, d in deliveries:
        if d.state not in ("pending", "sent", "dead"):
            raise ValueError(f"outbox state must be pending, sent or dead, got {d.state!r}")
        rows.append({**event.to_row(), "created_at": created_at, "next_attempt_at": created_at, "state": d.state,
                     "attempts": d.attempts, "sent_at": d.sent_at, "last_error": d.last_error[:_ERROR_LIMIT]})
    if rows:
        session.execute(sa.insert(_T), rows)
    return len(rows)


def claim_due(*, session: Session, now: datetime, limit: int, lease: float) -> list[AlertOutbox]:
    """Claims up to ``limit`` due pending rows, oldest first, for ``lease`` seconds.

    One statement. Candidates: the oldest due rows with no earlier row of their channel waiting
    (in backoff or leased), so a channel that is down does not hold up the others; they are
    locked ``FOR UPDATE SKIP LOCKED``, so concurrent dispatchers on PostgreSQL take disjoint rows
    without waiting. Claimed: the candidates with every earlier pending row of their channel among
    them (not locked by another dispatcher right now); they get ``next_attempt_at`` pushed out by
    the lease and ``attempts`` + 1. On SQLite (no row locks) the UPDATE holds the database write
    lock for the whole statement, so choice and update cannot interleave with another claim: what
    BEGIN IMMEDIATE gives a select-then-update. Returns detached copies in id order; the claim
    holds once the caller commits.
    """
    o, waiting, earlier = _T.alias("o"), _T.alias("waiting"), _T.alias("earlier")
    held_up = sa.exists().where(waiting.c.channel == o.c.channel, waiting.c.state == "pending",
                                waiting.c.id < o.c.id, waiting.c.next_attempt_at > now)
    candidates = (sa.select(o.c.id, o.c.channel)
                  .where(o.c.state == "pending", o.c.next_attempt_at <= now, ~held_up)
                  .order_by(o.c.id).limit(limit).with_for_update(skip_locked=True)
                  # Both uses below must see the same locked set: evaluate it once.
                  .cte("candidates").prefix_with("MATERIALIZED", dialect="postgresql"))
    taken_elsewhere = sa.exists().where(
        earlier.c.channel == candidates.c.channel, earlier.c.state == "pending", earlier.c.id < candidates.c.id,
        earlier.c.id.not_in(sa.select(candidates.c.id)))
    stmt = (_T.update().where(_T.c.id.in_(sa.select(candidates.c.id).where(~taken_elsewhere)))
            .values(next_attempt_at=now + timedelta(seconds=lease), attempts=_T.c.attempts + 1)
            .returning(*_T.c))
    rows = [AlertOutbox(**row._mapping) for row in session.execute(stmt)]
    return sorted(rows, key=lambda r: r.id or 0)


def mark_sent(*, session: Session, row: AlertOutbox, now: datetime) -> bool:
    """Records a delivery; False when the claim was no longer ours (nothing changed)."""
    return _fenced(session, row, state="sent", sent_at=now, last_error="")


def mark_failed(*, session: Session, row: AlertOutbox, retryable: bool, error: str, now: datetime,
                retry: RetryConfig, retry_after: float | None = None, secrets: Iterable[str] = ()) -> str:
    """Records a failed try: back to pending after a capped exponential backoff, or dead when not
    ``retryable``, after ``retry.max_attempts`` tries, or once the row is ``retry.max_age`` old.

    ``error`` is redacted (``secrets`` and every registered one) and cut before it is stored.
    Returns the new state, or "" when the claim was no longer ours.
    """
    error = redact(error, secrets)[:_ERROR_LIMIT]
    age = (now - row.created_at).total_seconds()
    give_up = not retryable or row.attempts >= retry.max_attempts or age >= retry.max_age
    if give_up:
        return "dead" if _fenced(session, row, state="dead", last_error=error) else ""
    delay = retry.delay(row.attempts, retry_after)
    applied = _fenced(session, row, last_error=error, next_attempt_at=now + timedelta(seconds=delay))
    return "pending" if applied else ""


def release(*, session: Session, row: AlertOutbox, now: datetime) -> bool:
    """Hands a claimed row back untried: due at ``now``, its attempt not counted."""
    return _fenced(session, row, attempts=row.attempts - 1, next_attempt_at=now)


def _fenced(session: Session, row: AlertOutbox, **values) -> bool:
    stmt = (_T.update().where(_T.c.id == row.id, _T.c.state == "pending", _T.c.attempts == row.attempts)
            .values(**values))
    return session.execute(stmt).rowcount == 1
