"""Writing what the monitor measured: targets, raw results with their rollups, and retention.

Contracts shared by every function here:

- keyword-only arguments; timestamps are timezone-aware (naive ones raise ``ValueError``) and
  are stored as UTC;
- they never commit: the caller owns the transaction (so an incident and its outbox row, or a
  batch of results and its rollups, land together or not at all).

Rollups count *scheduled* probes only. A confirmation probe (``confirm=True``) is an extra
sample taken because the previous one failed; counting it would make a failure weigh two or
three times as much as a success and push availability down. Confirmation probes are kept as
raw rows (so `queries.current_states` sees them) and the raw-row queries skip them too, so raw
and rollup figures agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from monitor.store import histogram
from monitor.store.models import (
    CapturedCaseRow,
    ProbeRow,
    ProxyRequestRow,
    RollupHour,
    RollupMinute,
    StatusSnapshot,
    TargetRow,
    utcnow,
)
from probes.result import ProbeResult, Status
from probes.target import Target

_CHUNK = 400  # keys per statement: far below SQLite's bound-parameter limit


def _aware(at: datetime, what: str = "timestamp") -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"naive {what} {at!r}: airisk stores UTC-aware times only")
    return at.astimezone(UTC)


def floor_minute(at: datetime) -> datetime:
    return _aware(at).replace(second=0, microsecond=0)


def floor_hour(at: datetime) -> datetime:
    return _aware(at).replace(minute=0, second=0, microsecond=0)


def _insert(session: Session, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (PostgreSQL and SQLite share the syntax)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"airisk stores to SQLite or PostgreSQL, not {name}")


def upsert_targets(
    *, session: Session, targets: Iterable[Target], now: datetime | None = None, keep_existing: bool = False
) -> int:
    """Records each target as configured now; returns how many. Keys and headers are never stored.

    With ``keep_existing``, a target already stored is left as it is (emulated history must not
    overwrite what a running monitor recorded of its configuration).
    """
    now = _aware(now or utcnow())
    rows = {
        t.name: {
            "name": t.name, "provider": t.provider, "model": t.model, "dialect": t.dialect,
            "base_url": t.base_url, "local": t.local, "updated_at": now,
        }
        for t in targets
    }
    if not rows:
        return 0
    table = TargetRow.__table__
    stmt = _insert(session, table)
    if keep_existing:
        stmt = stmt.on_conflict_do_nothing(index_elements=["name"])
    else:
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={c: stmt.excluded[c] for c in ("provider", "model", "dialect", "base_url", "local", "updated_at")},
        )
    session.exec(stmt, params=list(rows.values()))
    return len(rows)


@dataclass(slots=True)
class Agg:
    """The additive part of a rollup row: what one batch adds to one (target, region, bucket)."""

    count: int = 0
    up: int = 0
    degraded: int = 0
    down: int = 0
    ttft_hist: list[int] = field(default_factory=histogram.empty)
    total_hist: list[int] = field(default_factory=histogram.empty)
    errors: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    tokens_per_s_sum: float = 0.0
    tokens_per_s_n: int = 0

    def add(self, row: dict[str, Any]) -> None:
        """Counts one raw row (as `to_row` makes it)."""
        self.count += 1
        status = row["status"]
        if status == Status.UP:
            self.up += 1
        elif status == Status.DEGRADED:
            self.degraded += 1
        else:
            self.down += 1
        ttft, total = self.latencies(row)
        if ttft is not None:
            histogram.add(self.ttft_hist, ttft)
        if total is not None:
            histogram.add(self.total_hist, total)
        if row["error_kind"] != "ok":
            self.errors[row["error_kind"]] = self.errors.get(row["error_kind"], 0) + 1
        self.cost_usd += row["cost_usd"] or 0.0
        if row["tokens_per_s"] is not None:
            self.tokens_per_s_sum += row["tokens_per_s"]
            self.tokens_per_s_n += 1

    @staticmethod
    def latencies(row: dict[str, Any]) -> tuple[float | None, float | None]:
        """(ttft, total) as they count towards latency percentiles.

        TTFT whenever the first token came (even if the stream later failed); total time only for
        answered probes: a refused connection's 2 ms or a timeout's deadline says nothing about
        how long an answer takes.
        """
        total = row["total_ms"] if row["status"] != Status.DOWN else None
        return row["ttft_ms"], total

    def merge_row(self, other: Any) -> None:
        """Adds a stored rollup row (or another `Agg`) into this one."""
        for name in ("count", "up", "degraded", "down", "cost_usd", "tokens_per_s_sum", "tokens_per_s_n"):
            setattr(self, name, getattr(self, name) + (getattr(other, name) or 0))
        self.ttft_hist = histogram.merge(self.ttft_hist, other.ttft_hist or [])
        self.total_hist = histogram.merge(self.total_hist, other.total_hist or [])
        for kind, n in (other.errors or {}).items():
            self.errors[kind] = self.errors.get(kind, 0) + n

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def to_row(result: ProbeResult, *, confirm: bool, region: str) -> dict[str, Any]:
    """The `ProbeRow` values for a result (the answer text and nonce are not stored).

    Every row can be stored, whatever a provider made the probe report: a number the column
    cannot hold (NaN or infinite, which would also poison a rollup's sums for good; an integer
    past 32 bits) is stored as unknown (NULL), and the message loses NUL (PostgreSQL refuses it)
    and lone surrogates (no UTF-8 for them). A row refused outright would be set aside, lost to
    every query.
    """
    return {
        "target": result.target,
        "region": region,
        "at": _aware(result.at, "ProbeResult.at"),
        "status": str(result.status),
        "error_kind": str(result.error_kind),
        "http_status": _int32(result.http_status),
        "connect_ms": _finite(result.connect_ms),
        "ttfb_ms": _finite(result.ttfb_ms),
        "ttft_ms": _finite(result.ttft_ms),
        "total_ms": _finite(result.total_ms),
        "output_tokens": _int32(result.output_tokens),
        "input_tokens": _int32(result.input_tokens),
        "tokens_per_s": _finite(result.tokens_per_s),
        "stream_complete": bool(result.stream_complete),
        "canary_pass": result.canary_pass,
        "cost_usd": _finite(result.cost_usd),
        "retry_after_s": _finite(result.retry_after_s),
        "local": bool(result.local),
        "confirm": bool(confirm),
        "message": _text(result.message or ""),
    }


def _finite(value: float | None) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _int32(value: int | None) -> int | None:
    return value if isinstance(value, int) and -(2**31) <= value < 2**31 else None


def _text(value: str) -> str:
    value = value.replace("\x00", "\ufffd")
    return value if value.isascii() else value.encode("utf-8", "replace").decode("utf-8")


def write_results(*, session: Session, results: Sequence[tuple[ProbeResult, bool]], region: str) -> int:
    """Inserts the raw rows and adds them into the minute and hour rollups; returns the row count.

    ``results`` pairs each `ProbeResult` with "is a confirmation probe". ``region`` is this
    monitor's vantage point (it overrides ``ProbeResult.region``). Safe under concurrency on
    PostgreSQL: writers of different regions touch different rollup rows; writers of the same
    region serialize on the rollup rows' locks (taken in key order, so they cannot deadlock).
    """
    rows = [to_row(r, confirm=c, region=region) for r, c in results]
    if not rows:
        return 0
    session.exec(sa.insert(ProbeRow.__table__), params=rows)
    minute: dict[tuple[str, str, datetime], Agg] = {}
    hour: dict[tuple[str, str, datetime], Agg] = {}
    for row in rows:
        if row["confirm"]:
            continue
        minute.setdefault((row["target"], region, floor_minute(row["at"])), Agg()).add(row)
        hour.setdefault((row["target"], region, floor_hour(row["at"])), Agg()).add(row)
    # Minute rows before hour rows, keys sorted: every writer takes locks in one global order.
    _add_to_rollup(session, RollupMinute.__table__, minute)
    _add_to_rollup(session, RollupHour.__table__, hour)
    return len(rows)


def _padded(keys: list[tuple[str, str, datetime]]) -> list[tuple[str, str, datetime]]:
    """``keys`` with the last repeated up to the next power of two.

    A statement whose text depends on how many keys it carries (``IN (VALUES ...)``) is a new
    statement for every count, and every pooled SQLite connection keeps up to 128 of them
    prepared (native memory, out of Python's sight): with batch sizes anywhere from 1 to 400, the
    monitor's memory crept up for hours. Padded, they come in ten sizes at most."""
    size = 1 << (len(keys) - 1).bit_length()
    return keys + keys[-1:] * (size - len(keys))


def _add_to_rollup(session: Session, table: sa.Table, deltas: dict[tuple[str, str, datetime], Agg]) -> None:
    keys = sorted(deltas)
    blank = Agg().values()
    # One statement text whatever the batch: executemany of a one-row INSERT (a multi-row VALUES
    # was a new statement per row count, in SQLAlchemy's compiled cache and in each connection's).
    ensure = _insert(session, table).on_conflict_do_nothing(index_elements=["target", "region", "bucket"])
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        # 1. Make sure each row exists. ON CONFLICT DO NOTHING cannot fail on a concurrent insert
        #    (it waits for the other transaction, then does nothing); on SQLite, starting with a
        #    write takes the write lock first, so the read below cannot go stale.
        session.exec(ensure, params=[{"target": t, "region": r, "bucket": b, **blank} for t, r, b in chunk])
        # 2. Lock them (PostgreSQL; SQLite already holds the database write lock) and read.
        pk = sa.tuple_(table.c.target, table.c.region, table.c.bucket)
        current = session.exec(
            sa.select(table).where(pk.in_(_padded(chunk))).order_by(*table.primary_key.columns).with_for_update()
        ).all()
        # 3. Write back old + delta.
        updates = []
        for row in current:
            agg = Agg()
            agg.merge_row(row)
            agg.merge_row(deltas[(row.target, row.region, row.bucket)])
            updates.append({"k_target": row.target, "k_region": row.region, "k_bucket": row.bucket, **agg.values()})
        # executemany: the SET clause comes from the column-named keys of the parameters.
        stmt = (
            table.update()
            .where(table.c.target == sa.bindparam("k_target"))
            .where(table.c.region == sa.bindparam("k_region"))
            .where(table.c.bucket == sa.bindparam("k_bucket", type_=table.c.bucket.type))
        )
        session.exec(stmt, params=updates)


def prune(
    *,
    session: Session,
    now: datetime,
    raw_days: int = 14,
    rollup_minute_days: int = 2,
    rollup_hour_days: int = 365,
    status_days: int = 30,
    proxy_days: int | None = None,
    capture_days: int = 7,
) -> dict[str, int]:
    """Deletes what is past its retention; returns rows deleted per table.

    Rollups are written together with the raw rows, so dropping raw rows loses no history the
    dashboard shows: windows beyond the raw retention are answered from the rollups.
    The fault proxy's request log (``proxy_request``, one row per proxied request, so it grows
    like the raw results) is kept ``proxy_days``, unset: as long as raw results (``raw_days``).
    Captured requests and answers (``captured_case``, opt-in, possibly personal data) are kept
    ``capture_days``. Incidents, alerts, drills and eval results are kept (they are few, and the
    outbox belongs to the dispatcher).
    """
    now = _aware(now, "now")
    plan = [
        (ProbeRow.__table__, "at", raw_days),
        (RollupMinute.__table__, "bucket", rollup_minute_days),
        (RollupHour.__table__, "bucket", rollup_hour_days),
        (StatusSnapshot.__table__, "fetched_at", status_days),
        (ProxyRequestRow.__table__, "at", raw_days if proxy_days is None else proxy_days),
        (CapturedCaseRow.__table__, "at", capture_days),
    ]
    deleted: dict[str, int] = {}
    for table, column, days in plan:
        result = session.exec(table.delete().where(table.c[column] < now - timedelta(days=days)))
        deleted[table.name] = result.rowcount
    return deleted
