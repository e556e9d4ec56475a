"""When providers fail: outage timelines drawn like the published incident histories.

Durations and gaps come from the quantiles below, derived from OpenAI's and Anthropic's status-page
histories in Chu et al., "An Empirical Characterization of Outages and Incidents in Public Services for
Large Language Models", ICPE 2025 (arXiv 2501.12469; ``bench/data/incident_durations.csv``), capped at 12
hours; other providers draw from either table. A local server crashes or restarts every ~5 days for 2-20
minutes instead.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chaos.history.clock import DAY, HOUR, MINUTE
from chaos.history.profiles import HistoryTarget

_MAX_OUTAGE = 12 * HOUR

# Quantiles 0, 5, ..., 100 % of incident durations (minutes) and of the gaps between them (hours).
_DURATION_MIN = {
    "openai": (2.0, 11.4, 18.8, 24.0, 30.0, 34.0, 40.0, 49.0, 60.2, 70.6, 77.0, 86.0, 96.2, 117.0, 146.0,
               172.0, 213.0, 273.0, 321.0, 473.0, 4910.0),
    "anthropic": (1.0, 6.5, 13.0, 15.0, 16.0, 18.0, 22.0, 24.0, 36.0, 41.0, 55.0, 63.0, 75.0, 84.0, 95.0,
                  111.0, 150.0, 214.0, 321.0, 1100.0, 11200.0),
}
_GAP_H = {
    "openai": (0.0833, 1.18, 2.94, 5.31, 7.51, 10.7, 15.1, 18.2, 21.8, 24.8, 27.5, 34.1, 44.8, 56.6, 70.2,
               93.2, 115.0, 127.0, 165.0, 378.0, 1510.0),
    "anthropic": (0.0833, 1.03, 2.25, 3.06, 3.82, 4.89, 9.08, 13.8, 18.2, 22.7, 32.5, 45.6, 61.9, 74.0, 88.5,
                  99.0, 112.0, 146.0, 192.0, 318.0, 1040.0),
}


@dataclass(slots=True)
class Outage:
    provider: str
    start: int
    end: int
    shape: str  # outage | errors | latency
    p_fail: float
    slow: float  # TTFT factor; for a latency incident, the median TTFT itself (ms)
    targets: frozenset[str]
    post: int | None = None  # the vendor's first post (None: it never posted)
    resolved: int | None = None  # when the vendor marked it resolved
    vendor_id: str = ""


_SHAPES = (("outage", 0.35), ("errors", 0.45), ("latency", 0.2))
TITLES = {"outage": "API unavailable", "errors": "Elevated error rates on the API",
           "latency": "Increased latency on the API"}
IMPACT = {"outage": "major", "errors": "minor", "latency": "minor"}
_POSTS = {"outage": 0.95, "errors": 0.8, "latency": 0.6}  # chance the vendor posts about it at all


def draw_quantile(rng: np.random.Generator, quantiles: Sequence[float]) -> float:
    """A draw from the distribution given by evenly spaced quantiles, log-linear between them."""
    u = rng.random() * (len(quantiles) - 1)
    i = min(int(u), len(quantiles) - 2)
    lo, hi = np.log(quantiles[i]), np.log(quantiles[i + 1])
    return float(np.exp(lo + (hi - lo) * (u - i)))


def table_for(provider: str, rng: np.random.Generator) -> str:
    if provider in ("openai", "azure-openai", "anthropic"):
        return "anthropic" if provider == "anthropic" else "openai"
    return "openai" if rng.random() < 0.5 else "anthropic"


def draw_outages(provider: str, targets: list[HistoryTarget], start: int, end: int, seed: int, has_page: bool,
                 rate: float) -> list[Outage]:
    """Outages of one provider (or one local target) between start and end, like the real histories."""
    rng = np.random.default_rng([seed, zlib.crc32(f"outages:{provider}".encode())])
    names = [t.name for t in targets]
    local = all(t.local for t in targets)
    out: list[Outage] = []

    def gap() -> int:
        # A local server: a crash or a restart every ~5 days; a vendor: the published gaps.
        days = rng.exponential(5) if local else draw_quantile(rng, _GAP_H[table_for(provider, rng)]) / 24
        return int(days * DAY / rate)

    t = start - int(rng.random() * gap())  # as if the history had started long before
    while True:
        s = t + gap()
        if local:
            dur = int(rng.uniform(2, 20) * MINUTE)
        else:
            dur = min(int(draw_quantile(rng, _DURATION_MIN[table_for(provider, rng)]) * MINUTE), _MAX_OUTAGE)
        if s >= end:
            return out
        t = s + dur
        if t <= start:
            continue
        shape = "outage" if local else str(rng.choice([name for name, _ in _SHAPES], p=[p for _, p in _SHAPES]))
        p_fail = {"outage": rng.uniform(0.85, 1.0), "errors": rng.uniform(0.1, 0.4), "latency": 0.03}[shape]
        # A latency incident: a median TTFT of 6-12 s, well clear of a 4 s DEGRADED limit (the detector
        # has no hysteresis for latency, so a median hovering at the limit would open one incident after another).
        slow = rng.uniform(6000, 12000) if shape == "latency" else rng.uniform(1.2, 2.0)
        hit = names
        if len(names) > 1 and rng.random() < 0.3:  # one model's outage, not the provider's
            hit = list(rng.choice(names, size=int(rng.integers(1, len(names))), replace=False))
        o = Outage(provider, s, t, shape, float(p_fail), float(slow), frozenset(hit))
        if has_page and rng.random() < _POSTS[shape]:
            lead = float(np.clip(rng.lognormal(np.log(8), 0.6), 1, 60))  # minutes after it began
            o.post, o.resolved = s + int(lead * MINUTE), max(t, s + int(lead * MINUTE)) + int(
                rng.uniform(5, 30) * MINUTE)
            o.vendor_id = f"emu{zlib.crc32(f'{provider}{s}'.encode()):08x}"
        out.append(o)
