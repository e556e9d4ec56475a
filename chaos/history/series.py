"""One target's probe results as numpy columns, drawn from its provider's profile and the outages it met."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from chaos.history.clock import DAY, HOUR
from chaos.history.outages import Outage
from chaos.history.profiles import HistoryTarget, profile_of
from probes.catalog import CATALOG
from probes.result import ErrorKind, Status

_WRONG_RATE = 0.0008  # canary failures outside outages

# Kind codes: an index into KINDS. Statuses: 0 up, 1 degraded, 2 down.
KINDS = (ErrorKind.OK, ErrorKind.WRONG_ANSWER, ErrorKind.SERVER_ERROR, ErrorKind.OVERLOADED,
         ErrorKind.RATE_LIMITED, ErrorKind.FIRST_TOKEN_TIMEOUT, ErrorKind.CONNECTION_RESET,
         ErrorKind.CONNECT_TIMEOUT, ErrorKind.CONNECTION_REFUSED, ErrorKind.STREAM_CUT, ErrorKind.STREAM_STALLED)
K = {k: i for i, k in enumerate(KINDS)}
STATUSES = (Status.UP, Status.DEGRADED, Status.DOWN)
STATUS_OF = np.array([STATUSES.index(k.status) for k in KINDS], dtype=np.int8)
ANSWERED = np.array([k in (ErrorKind.OK, ErrorKind.WRONG_ANSWER) for k in KINDS])
HTTP_200 = np.array([k in (ErrorKind.OK, ErrorKind.WRONG_ANSWER, ErrorKind.FIRST_TOKEN_TIMEOUT,
                           ErrorKind.STREAM_CUT, ErrorKind.STREAM_STALLED) for k in KINDS])


@dataclass(slots=True)
class Series:
    """One target's results as columns (NaN / -1 / 0 where the field is None)."""

    at: np.ndarray  # int64 µs
    kind: np.ndarray  # int8, index into KINDS
    http: np.ndarray  # int16, 0: none
    connect: np.ndarray
    ttfb: np.ndarray
    ttft: np.ndarray
    total: np.ndarray
    out_tok: np.ndarray  # int32, -1: none
    in_tok: np.ndarray
    tps: np.ndarray
    cost: np.ndarray
    retry_after: np.ndarray

    @property
    def status(self) -> np.ndarray:
        return STATUS_OF[self.kind]


def pick_kinds(rng: np.random.Generator, weights: dict[ErrorKind, float], n: int) -> np.ndarray:
    kinds = list(weights)
    p = np.array([weights[k] for k in kinds], dtype=float)
    return np.array([K[k] for k in kinds], dtype=np.int8)[rng.choice(len(kinds), size=n, p=p / p.sum())]


def draw_series(t: HistoryTarget, start: int, end: int, interval: int, outages: list[Outage], seed: int) -> Series:
    """``t`` probed every ``interval`` µs in ``[start, end)``: latencies around its median (lognormal, a
    daily swing, rare spikes), random failures at its base rate, and the ``outages`` that hit it.
    Values are rounded as stored, so the rollups count exactly what the raw rows hold."""
    rng = np.random.default_rng([seed, zlib.crc32(t.name.encode())])
    prof = profile_of(t.provider, t.local)
    phase = int(rng.uniform(0, interval))  # first runs spread over one interval, as the scheduler does
    n = max(0, -(-(end - start - phase) // interval))
    at = start + phase + np.arange(n, dtype=np.int64) * interval + rng.exponential(700, n).astype(np.int64)
    at = at[at < end]
    n = len(at)
    kind = np.zeros(n, dtype=np.int8)
    noise = rng.random(n) < t.base_error_rate
    kind[noise] = pick_kinds(rng, prof.noise, int(noise.sum()))
    kind[(rng.random(n) < _WRONG_RATE) & (kind == 0)] = K[ErrorKind.WRONG_ANSWER]
    slow = np.ones(n)
    for o in outages:
        if t.name not in o.targets:
            continue
        i0, i1 = np.searchsorted(at, [o.start, o.end])
        fail = rng.random(i1 - i0) < o.p_fail
        kind[i0:i1][fail] = pick_kinds(rng, prof.outage, int(fail.sum()))
        slow[i0:i1] *= o.slow / t.ttft_ms if o.shape == "latency" else o.slow
    hour = (at % DAY) / HOUR
    diurnal = 1 + 0.15 * np.sin(2 * np.pi * (hour - 9) / 24)  # busiest mid-afternoon UTC
    spike = np.where(rng.random(n) < 0.015, rng.uniform(2, 5, n), 1.0)
    ttft = t.ttft_ms * diurnal * spike * slow * rng.lognormal(0, 0.3, n)
    tps = 11_000 / (t.total_ms - t.ttft_ms) * rng.lognormal(0, 0.15, n) / np.sqrt(slow)
    out_tok = rng.integers(8, 17, n).astype(np.int32)
    in_tok = rng.integers(38, 53, n).astype(np.int32)
    total = ttft + (out_tok - 1) / tps * 1000
    http = np.where(HTTP_200[kind], 200, 0).astype(np.int16)
    ttfb = ttft * (rng.uniform(0.002, 0.01, n) if t.local else rng.uniform(0.97, 0.995, n))
    connect = np.where(rng.random(n) < 0.05, rng.lognormal(np.log(0.4 if t.local else 60), 0.3, n), np.nan)
    fast_fail = rng.lognormal(np.log(1 if t.local else 120), 0.5, n)  # an error answered at once
    retry_after = np.full(n, np.nan)
    entry = CATALOG.get(t.provider)
    price_in, price_out = (entry.price_in, entry.price_out) if entry and not t.local else (0.0, 0.0)

    def where(k: ErrorKind) -> np.ndarray:
        return kind == K[k]

    for k, codes in ((ErrorKind.SERVER_ERROR, (500, 502, 503)), (ErrorKind.OVERLOADED, (prof.overloaded_http,)),
                     (ErrorKind.RATE_LIMITED, (429,))):
        m = where(k)
        http[m] = rng.choice(codes, size=int(m.sum()))
        total[m] = ttfb[m] = fast_fail[m]
    m = where(ErrorKind.RATE_LIMITED)
    retry_after[m] = rng.choice((1.0, 5.0, 20.0, 60.0), size=int(m.sum()))
    for k, spent in ((ErrorKind.CONNECTION_RESET, fast_fail), (ErrorKind.CONNECTION_REFUSED, fast_fail / 100),
                     (ErrorKind.CONNECT_TIMEOUT, np.full(n, 5000.0))):
        m = where(k)
        total[m], ttfb[m], connect[m] = spent[m], np.nan, np.nan
    m = where(ErrorKind.FIRST_TOKEN_TIMEOUT)
    total[m] = 20_000 + fast_fail[m] / 10  # the first-token deadline
    m = where(ErrorKind.STREAM_CUT)
    out_tok[m] = np.maximum(1, out_tok[m] // 3)
    total[m] = ttft[m] + (out_tok[m] - 1) / tps[m] * 1000
    m = where(ErrorKind.STREAM_STALLED)
    total[m] = ttft[m] + 15_000  # the stall deadline
    first_token = ANSWERED[kind] | where(ErrorKind.STREAM_CUT) | where(ErrorKind.STREAM_STALLED)
    ttft[~first_token] = np.nan
    tps[~ANSWERED[kind]] = np.nan
    billed = ANSWERED[kind] | where(ErrorKind.STREAM_CUT)
    cost = np.where(billed, (in_tok * price_in + out_tok * price_out) / 1e6, np.nan)
    out_tok[~billed] = -1
    in_tok[~billed] = -1
    # Stored rounded; the rollups count the stored values.
    r2 = {name: np.round(a, 2) for name, a in (("connect", connect), ("ttfb", ttfb), ("ttft", ttft), ("total", total))}
    return Series(at, kind, http, r2["connect"], r2["ttfb"], r2["ttft"], r2["total"], out_tok, in_tok,
                   np.round(tps, 1), cost, retry_after)


def message_for(kind: int, http: int) -> str:
    k = KINDS[kind]
    if k is ErrorKind.OK:
        return ""
    if k is ErrorKind.WRONG_ANSWER:
        return "canary answer did not match"
    if http and http != 200:
        return f"HTTP {http}: {k}"
    return {ErrorKind.FIRST_TOKEN_TIMEOUT: "no first token within 20s", ErrorKind.STREAM_STALLED: "no chunk for 15s",
            ErrorKind.STREAM_CUT: "stream ended without its terminator"}.get(k, str(k).replace("_", " "))
