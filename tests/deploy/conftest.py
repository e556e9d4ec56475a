"""What `airisk monitor`'s /metrics really exposes, read over HTTP as Prometheus reads it.

The Metrics registry is built as the monitor builds it, fed one good and one failed probe and a
state (a labelled series appears only once it has a value), served on a loopback port and scraped;
the shipped rules and dashboard are then held to the sample names and labels found there.
"""

from __future__ import annotations

import shutil
import socket
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.metrics import Metrics
from probes.result import ErrorKind, ProbeResult
from tests.conftest import need

# Labels Prometheus adds to every scraped series (the scrape's job and instance).
SCRAPE_LABELS = frozenset({"job", "instance"})


def _probe(kind: ErrorKind) -> ProbeResult:
    return ProbeResult(target="claude", provider="anthropic", model="m", at=datetime.now(UTC), status=kind.status,
                       error_kind=kind, ttft_ms=250.0, total_ms=900.0, cost_usd=0.0002)


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool's path. It is Debian's `prometheus` package (.ci/run installs it): without it these tests
    skip on a developer's machine, saying how to get it, and fail under CI=true, as a check CI skipped
    would prove nothing."""
    found = shutil.which("promtool")
    need(found is not None, "promtool is not installed (apt-get install prometheus; .ci/run installs it)")
    return found  # type: ignore[return-value]


@pytest.fixture(scope="session")
def exposed() -> dict[str, frozenset[str]]:
    """Sample name (``airisk_ttft_seconds_bucket``, ``airisk_probes_total``...) -> its label names."""
    metrics = Metrics()
    metrics.observe(_probe(ErrorKind.OK), region="eu")
    metrics.observe(_probe(ErrorKind.OVERLOADED), region="eu")
    metrics.set_state(target="claude", provider="anthropic", region="eu", state="degraded")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = metrics.serve(port=port)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    assert any(name.startswith("airisk_") for name in names), f"no airisk metric in the exposition:\n{text}"
    return {name: frozenset(labels) for name, labels in names.items()}
