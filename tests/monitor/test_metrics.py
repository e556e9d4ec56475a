"""Prometheus metrics, scraped over HTTP as Prometheus would."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families

from monitor.metrics import Metrics
from probes.result import ErrorKind, ProbeResult, Status


def _result(kind: ErrorKind, ttft: float | None) -> ProbeResult:
    return ProbeResult(target="claude", provider="anthropic", model="m", at=datetime.now(UTC), status=kind.status,
                       error_kind=kind, ttft_ms=ttft, total_ms=(ttft or 0) + 100, cost_usd=0.0002)


def test_metrics_endpoint_reports_state_latency_errors_and_cost():
    metrics = Metrics()
    metrics.observe(_result(ErrorKind.OK, 250), region="eu")
    metrics.observe(_result(ErrorKind.OVERLOADED, None), region="eu")
    metrics.set_state(target="claude", provider="anthropic", region="eu", state="down")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = metrics.serve(port=port)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }

    def value(name: str, **extra: str) -> float:
        labels = {"target": "claude", "provider": "anthropic", "region": "eu", **extra}
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("airisk_target_up") == 0
    assert value("airisk_target_state", state="down") == 1 and value("airisk_target_state", state="up") == 0
    assert value("airisk_probe_errors_total", kind="overloaded") == 1
    assert value("airisk_ttft_seconds_bucket", le="0.3") == 1 and value("airisk_ttft_seconds_bucket", le="0.2") == 0
    assert value("airisk_probe_cost_usd_total") == 0.0004
    assert value("airisk_probes_total", status=str(Status.DOWN)) == 1
    assert value("airisk_probes_total", status=str(Status.UP)) == 1


def test_impossible_figures_are_left_out_not_raised_on():
    """A provider reporting negative token counts makes a negative cost (a Counter refuses it);
    NaN or negative times would spoil the histogram sums. The probe still counts."""
    metrics = Metrics()
    odd = ProbeResult(target="claude", provider="anthropic", model="m", at=datetime.now(UTC), status=Status.UP,
                      error_kind=ErrorKind.OK, ttft_ms=float("nan"), total_ms=-5.0, cost_usd=-0.002,
                      output_tokens=-7, input_tokens=-3)
    metrics.observe(odd, region="eu")
    metrics.observe(_result(ErrorKind.OK, 250), region="eu")
    labels = {"target": "claude", "provider": "anthropic", "region": "eu"}
    value = metrics.registry.get_sample_value
    assert value("airisk_probes_total", {**labels, "status": "up"}) == 2
    assert value("airisk_probe_cost_usd_total", labels) == 0.0002
    assert value("airisk_ttft_seconds_count", labels) == 1 and value("airisk_ttft_seconds_sum", labels) == 0.25
    assert value("airisk_total_seconds_count", labels) == 1 and value("airisk_total_seconds_sum", labels) == 0.35
