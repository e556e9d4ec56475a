"""The watch loop over the real emulator: intervals, spread, confirmations, isolation."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from chaos.faults import Fault
from monitor.schedule import Scheduler, Watch
from probes import Deadlines, ErrorKind


async def _collect(emulator, client, watches, seconds, *, confirm_after=None):
    seen = defaultdict(list)

    async def handle(watch, result, confirm):
        seen[watch.target.name].append((result, confirm))
        if confirm_after is not None and not result.ok and not confirm:
            return confirm_after
        return None

    scheduler = Scheduler(watches=watches, client=client, handle=handle, seed=3)
    scheduler.start()
    await asyncio.sleep(seconds)
    await scheduler.stop(grace=2.0)
    return seen


async def test_each_target_probes_on_its_own_interval(emulator, client):
    watches = [Watch(emulator.target("openai"), 0.3), Watch(emulator.target("anthropic"), 0.6)]
    seen = await _collect(emulator, client, watches, 2.0)
    assert 5 <= len(seen["openai"]) <= 8  # first run within one interval, then every 0.3 s
    assert 2 <= len(seen["anthropic"]) <= 4
    assert all(r.ok for runs in seen.values() for r, _ in runs)


async def test_a_failure_triggers_a_quick_confirmation_probe(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
    watches = [Watch(emulator.target("anthropic"), 5.0)]
    seen = await _collect(emulator, client, watches, 5.5, confirm_after=0.2)
    kinds = [(r.error_kind, confirm) for r, confirm in seen["anthropic"]]
    assert kinds[:2] == [(ErrorKind.OVERLOADED, False), (ErrorKind.OVERLOADED, True)]


async def test_a_hanging_provider_does_not_delay_the_others(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "hang", "route": "gemini"}))
    hanging = emulator.target("gemini", deadlines=Deadlines(connect=1, first_token=30, total=30, stall=30))
    watches = [Watch(hanging, 0.2), Watch(emulator.target("openai"), 0.2)]
    seen = await _collect(emulator, client, watches, 1.5)
    assert len(seen["gemini"]) <= 1  # hung until stop: no overlapping runs piled up behind it
    assert len(seen["openai"]) >= 5
    assert max(watches[1].delays_ms) < 100  # openai's runs started on time
