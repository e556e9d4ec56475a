"""What a long-running monitor keeps stays within its bound (issue 13, the soak: bench/soak.py,
diagnosed with bench/soak_trace.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor import schedule
from monitor.schedule import Scheduler, Watch
from probes.result import ErrorKind, ProbeResult, Status


async def test_scheduling_delays_kept_fill_within_minutes(monkeypatch, emulator, client):
    """A target keeps its last `DELAYS_KEPT` scheduling delays (for benches and tests): 20 is a
    bench's sample and fills within the soak's 5-minute warm-up (200 targets probed every 10 s). At
    100 a target, the soak's monitor was still filling them at 13 minutes, 0.6 MiB for 200 targets."""

    async def quick_probe(target, client, **_):
        return ProbeResult(target=target.name, provider="openai", model="m", at=datetime.now(UTC),
                           status=Status.UP, error_kind=ErrorKind.OK, total_ms=1.0)

    monkeypatch.setattr(schedule, "probe", quick_probe)

    async def handle(watch, result, confirm, sibling):
        return None

    scheduler = Scheduler(watches=[Watch(emulator.target("openai"), 10.0)], client=client, handle=handle)
    for _ in range(300):
        await scheduler._run("openai", False, datetime.now(UTC))
    watch = scheduler.watches["openai"]
    assert len(watch.delays_ms) == schedule.DELAYS_KEPT <= 20
    # The soak: 200 targets every 10 s fill theirs in 200 s, within the 5-minute warm-up.
    assert schedule.DELAYS_KEPT * 10 <= 5 * 60
