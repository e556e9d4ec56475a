"""The results as the monitor's writer leaves them: raw rows in time order, rollups per bucket.

Raw rows are handed to `monitor.store.bulk.write_raw_bulk` column by column, already what the driver
binds (times through `monitor.store.bulk.stored_times`), in time order (so the ``at`` indexes are
appended to, not split) and a transaction per ~250,000 rows. Rollups are computed per bucket in numpy
with `monitor.store.results.Agg`'s semantics, as `Agg` values for `monitor.store.bulk.write_rollups_bulk`.
The store owns the schema: nothing here names a table or lists its columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from chaos.history.clock import MINUTE, to_dt
from chaos.history.profiles import HistoryTarget
from chaos.history.series import ANSWERED, KINDS, STATUS_OF, STATUSES, Series, message_for
from monitor.store import histogram
from monitor.store.bulk import stored_times, write_raw_bulk
from monitor.store.results import Agg
from probes.result import ErrorKind

_CHUNK_ROWS = 250_000
_EDGES = np.array(histogram.EDGES_MS)
_NB = histogram.N_BUCKETS


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
        iso = np.datetime_as_string(col["at"].astype("datetime64[us]"), unit="us").tolist()
        combo = kind.astype(np.int32) * 1000 + http
        uniq, inv = np.unique(combo, return_inverse=True)
        message = np.array([message_for(int(u) // 1000, int(u) % 1000) for u in uniq], dtype=object)[inv]
        written += write_raw_bulk(engine=engine, columns={
            "target": names[who].tolist(), "at": stored_times(engine, iso),
            "status": statuses[STATUS_OF[kind]].tolist(), "error_kind": kinds[kind].tolist(),
            "http_status": _nullable(http, 0), "connect_ms": _nullable(col["connect"]),
            "ttfb_ms": _nullable(col["ttfb"]), "ttft_ms": _nullable(col["ttft"]), "total_ms": _nullable(col["total"]),
            "output_tokens": _nullable(col["out_tok"], -1), "input_tokens": _nullable(col["in_tok"], -1),
            "tokens_per_s": _nullable(col["tps"]), "stream_complete": ANSWERED[kind].tolist(),
            "canary_pass": canary[kind].tolist(), "cost_usd": _nullable(col["cost"]),
            "retry_after_s": _nullable(col["retry_after"]), "local": local[who].tolist(), "message": message.tolist(),
        })
    return written


def rollup_rows(name: str, s: Series, since: int, width: int) -> list[tuple[str, datetime, Agg]]:
    """The rollup rows `write_results` would have left for these results, one per bucket of ``width``,
    as `monitor.store.bulk.write_rollups_bulk` takes them."""
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
        (name, to_dt(b * width), Agg(count=int(counts[i]), up=int(by_status[0][i]), degraded=int(by_status[1][i]),
                                     down=int(by_status[2][i]), ttft_hist=ttft[i], total_hist=total[i],
                                     errors=errors[i], cost_usd=float(cost[i]), tokens_per_s_sum=float(tps_sum[i]),
                                     tokens_per_s_n=int(tps_n[i])))
        for i, b in enumerate(buckets.tolist())
    ]
