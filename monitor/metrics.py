"""Prometheus metrics for `airisk monitor` (served at ``/metrics``).

Labels are target names, providers, regions and error kinds: all from the config, never
a key or a URL, so nothing secret reaches a scrape. Latency buckets span what LLM APIs do
(50 ms to 2 min), where the default Prometheus buckets stop at 10 s.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from probes.result import ProbeResult

_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120)
STATES = ("up", "degraded", "down")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ("target", "provider", "region")
        self.up = Gauge("airisk_target_up", "1 when the target's detected state is up", labels,
                        registry=self.registry)
        self.state = Gauge("airisk_target_state", "1 for the target's detected state", (*labels, "state"),
                           registry=self.registry)
        self.ttft = Histogram("airisk_ttft_seconds", "Time to first token", labels, buckets=_BUCKETS,
                              registry=self.registry)
        self.total = Histogram("airisk_total_seconds", "Request start to end of stream", labels,
                               buckets=_BUCKETS, registry=self.registry)
        self.probes = Counter("airisk_probes_total", "Probes sent, by result status", (*labels, "status"),
                              registry=self.registry)
        self.errors = Counter("airisk_probe_errors_total", "Failed probes by error kind", (*labels, "kind"),
                              registry=self.registry)
        self.cost = Counter("airisk_probe_cost_usd_total", "What the probes cost, USD", labels,
                            registry=self.registry)

    def observe(self, result: ProbeResult, *, region: str = "") -> None:
        """Counts one result. A figure no real probe has (a negative, NaN or infinite time or cost,
        as a provider reporting negative token counts makes) is left out of its metric rather
        than raised on (a Counter refuses a negative step) or let into a sum it would spoil."""
        labels = (result.target, result.provider, region)
        self.probes.labels(*labels, str(result.status)).inc()
        if (ttft := _plausible(result.ttft_ms)) is not None:
            self.ttft.labels(*labels).observe(ttft / 1000)
        if (total := _plausible(result.total_ms)) is not None and result.ok:
            self.total.labels(*labels).observe(total / 1000)
        if not result.ok:
            self.errors.labels(*labels, str(result.error_kind)).inc()
        if cost := _plausible(result.cost_usd):
            self.cost.labels(*labels).inc(cost)

    def set_state(self, *, target: str, provider: str, region: str, state: str) -> None:
        self.up.labels(target, provider, region).set(1 if state == "up" else 0)
        for name in STATES:
            self.state.labels(target, provider, region, name).set(1 if name == state else 0)

    def serve(self, *, port: int, host: str = "127.0.0.1"):
        """Serve ``/metrics`` on a thread; returns (server, thread) so the caller can shut it down."""
        return start_http_server(port, addr=host, registry=self.registry)


def _plausible(value: float | None) -> float | None:
    """``value`` if it is a finite number >= 0, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)
