"""Writing the results as the monitor's writer leaves them: raw rows in time order, rollups per bucket.

Raw rows go through the driver's ``executemany``, pre-converted to what SQLAlchemy would bind (on
SQLite, its ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text), in time order (so the ``at`` indexes are appended
to, not split) and a transaction per ~250,000 rows. Rollups are computed per bucket in numpy with
`monitor.store.results.Agg`'s semantics and inserted once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from chaos.history.clock import EPOCH, MINUTE, to_dt
from chaos.history.profiles import HistoryTarget
from chaos.history.series import ANSWERED, KINDS, STATUS_OF, STATUSES, Series, message_for
from monitor.store import histogram
from monitor.store.models import ProbeRow
from probes.result import ErrorKind

_CHUNK_ROWS = 250_000
_EDGES = np.array(histogram.EDGES_MS)
_NB = histogram.N_BUCKETS

_RAW_COLUMNS = ("target", "region", "at", "status", "error_kind", "http_status", "connect_ms", "ttfb_ms", "ttft_ms",
                "total_ms", "output_tokens", "input_tokens", "tokens_per_s", "stream_complete", "canary_pass",
                "cost_usd", "retry_after_s", "local", "confirm", "message")


def _nullable(a: np.ndarray, missing: Any = None) -> list[Any]:
    if a.dtype.kind == "f":
        out = a.astype(object)
        out[np.isnan(a)] = None
        return out.tolist()
    out = a.astype(object)
    out[a == missing] = None
    return out.tolist()


def write_raw(engine: Engine, targets: list[HistoryTarget], series: list[Series], since: int, end: int) -> int:
    """Every target's results in ``[since, end)`` as `ProbeRow` rows, in time order; returns how many."""
    dialect = engine.dialect.name
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    quote = engine.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c) for c in _RAW_COLUMNS)
    sql = f"INSERT INTO {quote(ProbeRow.__tablename__)} ({columns}) VALUES ({', '.join([mark] * len(_RAW_COLUMNS))})"
    per_us = sum(len(s.at) for s in series) / max(1, end - since)
    step = max(MINUTE, int(_CHUNK_ROWS / per_us) if per_us else end - since)
    names = np.array([t.name for t in targets], dtype=object)
    local = np.array([t.local for t in targets])
    statuses = np.array([str(s) for s in STATUSES], dtype=object)
    kinds = np.array([str(k) for k in KINDS], dtype=object)
    canary = np.array([True if k is ErrorKind.OK else False if k is ErrorKind.WRONG_ANSWER else None
                       for k in KINDS], dtype=object)
    written = 0
    for lo in range(since, end, step):
        hi = min(lo + step, end)
        parts = []
        for i, s in enumerate(series):
            a, b = np.searchsorted(s.at, [lo, hi])
            if b > a:
                parts.append((i, s, a, b))
        if not parts:
            continue
        col = {f: np.concatenate([getattr(s, f)[a:b] for _, s, a, b in parts]) for f in Series.__dataclass_fields__}
        who = np.concatenate([np.full(b - a, i) for i, _, a, b in parts])
        order = np.argsort(col["at"], kind="stable")
        col = {f: v[order] for f, v in col.items()}
        who, kind, http = who[order], col["kind"], col["http"]
        if dialect == "sqlite":  # SQLAlchemy's own storage format for DateTime on SQLite
            iso = np.datetime_as_string(col["at"].astype("datetime64[us]"), unit="us")
            at = np.char.replace(iso, "T", " ").tolist()
        else:
            at = [EPOCH + timedelta(microseconds=u) for u in col["at"].tolist()]
        combo = kind.astype(np.int32) * 1000 + http
        uniq, inv = np.unique(combo, return_inverse=True)
        message = np.array([message_for(int(u) // 1000, int(u) % 1000) for u in uniq], dtype=object)[inv]
        n = len(at)
        rows = list(zip(
            names[who].tolist(), [""] * n, at, statuses[STATUS_OF[kind]].tolist(), kinds[kind].tolist(),
            _nullable(http, 0), _nullable(col["connect"]), _nullable(col["ttfb"]), _nullable(col["ttft"]),
            _nullable(col["total"]), _nullable(col["out_tok"], -1), _nullable(col["in_tok"], -1),
            _nullable(col["tps"]), ANSWERED[kind].tolist(), canary[kind].tolist(), _nullable(col["cost"]),
            _nullable(col["retry_after"]), local[who].tolist(), [False] * n, message.tolist(), strict=True))
        with engine.begin() as conn:
            conn.exec_driver_sql(sql, rows)
        written += n
    return written


def rollup_rows(name: str, s: Series, since: int, width: int) -> list[dict[str, Any]]:
    """The rollup rows `write_results` would have left for these results, one per bucket of ``width``."""
    keep = s.at >= since
    at, kind = s.at[keep], s.kind[keep]
    if not len(at):
        return []
    status = STATUS_OF[kind]
    buckets, inv = np.unique(at // width, return_inverse=True)
    nb = len(buckets)
    counts = np.bincount(inv, minlength=nb)
    by_status = [np.bincount(inv, weights=status == i, minlength=nb).astype(int) for i in range(3)]

    def hist(values: np.ndarray, ok: np.ndarray) -> list[list[int]]:
        ok = ok & ~np.isnan(values)
        idx = inv[ok] * _NB + np.searchsorted(_EDGES, values[ok], side="right")
        return np.bincount(idx, minlength=nb * _NB).reshape(nb, _NB).tolist()

    ttft = hist(s.ttft[keep], np.ones(len(at), dtype=bool))
    total = hist(s.total[keep], status != 2)
    cost = np.bincount(inv, weights=np.nan_to_num(s.cost[keep]), minlength=nb)
    tps = s.tps[keep]
    timed = ~np.isnan(tps)
    tps_sum = np.bincount(inv[timed], weights=tps[timed], minlength=nb)
    tps_n = np.bincount(inv[timed], minlength=nb)
    errors: list[dict[str, int]] = [{} for _ in range(nb)]
    bad = kind != 0
    pairs, n = np.unique(inv[bad].astype(np.int64) * len(KINDS) + kind[bad], return_counts=True)
    for pair, c in zip(pairs.tolist(), n.tolist(), strict=True):
        errors[pair // len(KINDS)][str(KINDS[pair % len(KINDS)])] = c
    return [
        {"target": name, "region": "", "bucket": to_dt(b * width), "count": int(counts[i]), "up": int(by_status[0][i]),
         "degraded": int(by_status[1][i]), "down": int(by_status[2][i]), "ttft_hist": ttft[i], "total_hist": total[i],
         "errors": errors[i], "cost_usd": float(cost[i]), "tokens_per_s_sum": float(tps_sum[i]),
         "tokens_per_s_n": int(tps_n[i])}
        for i, b in enumerate(buckets.tolist())
    ]


def write_rows(engine: Engine, table: sa.Table, rows: list[dict[str, Any]], batch: int = 20_000) -> int:
    """``rows`` into ``table`` through SQLAlchemy (it serializes the JSON columns), in one transaction."""
    with engine.begin() as conn:
        for i in range(0, len(rows), batch):
            conn.execute(sa.insert(table), rows[i : i + batch])
    return len(rows)


def dialect_insert(engine: Engine, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (PostgreSQL's or SQLite's)."""
    return (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)
