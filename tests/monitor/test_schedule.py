"""The watch loop over the real emulator: intervals, spread, confirmations, isolation."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from chaos.faults import Fault
from monitor import schedule
from monitor.config.detection import DetectionConfig
from monitor.detect import Detector
from monitor.schedule import Scheduler, Watch
from probes import Deadlines, ErrorKind, ProbeResult, Status


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


async def _hedged(emulator, client, watches, seconds, *, hedges=3, hedge_after=0.3, confirm_after=None,
                  max_concurrency=64):
    seen = defaultdict(list)

    async def handle(watch, result, confirm):
        seen[watch.target.name].append((result, confirm))
        return confirm_after if confirm_after is not None and not result.ok else None

    scheduler = Scheduler(watches=watches, client=client, handle=handle, seed=3, hedge_after=lambda w: hedge_after,
                          hedges=lambda w, started, confirm: hedges, max_concurrency=max_concurrency)
    scheduler.start()
    await asyncio.sleep(seconds)
    await scheduler.stop(grace=3.0)
    return seen


async def test_a_probe_without_a_first_token_gets_its_confirmations_at_once(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "hang", "route": "gemini"}))
    hanging = emulator.target("gemini", deadlines=Deadlines(connect=1, first_token=1.0, total=5, stall=5))
    seen = await _hedged(emulator, client, [Watch(hanging, 1.0)], 2.6, confirm_after=0.05)
    runs = seen["gemini"]
    first = runs[0][0]
    assert not runs[0][1]
    hedged = [r for r, confirm in runs[1:4]]
    assert [confirm for _, confirm in runs[1:4]] == [True, True, True]
    assert all(r.error_kind is ErrorKind.FIRST_TOKEN_TIMEOUT for r, _ in runs[:4])
    # Sent together, hedge_after into the first probe: not one first-token deadline after another.
    for r in hedged:
        assert 0.25 <= (r.at - first.at).total_seconds() <= 0.6
    # The first probe's result asked for a confirmation while three were still in flight: only the
    # last of them to end asks again, so no fifth probe went within the hedges' deadline.
    assert all((r.at - first.at).total_seconds() > 1.25 for r, _ in runs[4:])


async def test_a_probe_that_answers_slowly_is_not_hedged(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "slow_tokens", "route": "openai", "params": {"gap_ms": 150}}))
    seen = await _hedged(emulator, client, [Watch(emulator.target("openai"), 0.6)], 2.5, hedge_after=0.2)
    runs = seen["openai"]
    assert runs and all(r.ok for r, _ in runs)
    assert runs[0][0].total_ms > 400  # still streaming past hedge_after: the first token is what counts
    assert not any(confirm for _, confirm in runs)


@pytest.mark.parametrize(("hedges", "local"), [(0, False), (3, True)], ids=["detector-needs-none", "local-model"])
async def test_no_hedges_when_the_detector_needs_none_or_the_target_is_a_local_model(emulator, client, hedges, local):
    emulator.emu.faults.add(Fault.from_dict({"type": "hang", "route": "gemini"}))
    hanging = emulator.target("gemini", deadlines=Deadlines(connect=1, first_token=0.8, total=5, stall=5))
    hanging = dataclasses.replace(hanging, local=local)
    seen = await _hedged(emulator, client, [Watch(hanging, 1.0)], 2.2, hedges=hedges, hedge_after=0.2)
    runs = seen["gemini"]
    assert runs and all(r.error_kind is ErrorKind.FIRST_TOKEN_TIMEOUT for r, _ in runs)
    assert not any(confirm for _, confirm in runs)


async def test_hedges_take_at_most_a_quarter_of_the_probe_slots(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "hang", "route": "gemini"}))
    hanging = emulator.target("gemini", deadlines=Deadlines(connect=1, first_token=1.0, total=5, stall=5))
    seen = await _hedged(emulator, client, [Watch(hanging, 1.0)], 2.0, max_concurrency=8)  # room for 2
    runs = seen["gemini"]
    first = runs[0][0]
    together = [r for r, confirm in runs if confirm and (r.at - first.at).total_seconds() < 0.9]
    assert len(together) == 2  # three wanted, two allowed: a hanging provider cannot take every slot


async def test_with_the_real_detector_a_late_first_token_is_hedged_once_and_a_slow_model_soon_not_at_all(
        emulator, client):
    # First token at 0.5 s on every probe, hedge_after 0.2 s: the first probes are hedged (4 each,
    # never more: a hedge waiting past hedge_after itself sends nothing), then the detector has
    # learnt the target's usual first token (3x 0.5 s > 0.2 s) and hedges no more.
    emulator.emu.faults.add(Fault.from_dict({"type": "first_token_delay", "route": "openai",
                                             "params": {"delay_ms": 500, "jitter_ms": 0}}))
    detector = Detector(DetectionConfig(hedge_after=0.2), "openai")
    seen = []

    async def handle(watch, result, confirm):
        seen.append((result, confirm))
        return detector.feed(result, confirm=confirm).confirm_in

    scheduler = Scheduler(watches=[Watch(emulator.target("openai"), 0.8)], client=client, handle=handle, seed=3,
                          hedge_after=lambda w: detector.hedge_after(),
                          hedges=lambda w, started, confirm: detector.hedges(at=started, confirm=confirm))
    scheduler.start()
    await asyncio.sleep(6.0)
    await scheduler.stop(grace=3.0)
    assert all(r.ok for r, _ in seen)
    scheduled = [r for r, confirm in seen if not confirm]
    hedged = [r for r, confirm in seen if confirm]
    assert len(scheduled) >= 6
    for base in scheduled[:3]:  # each round of hedges is the four a DOWN would need, no pile-up
        assert len([h for h in hedged if 0 <= (h.at - base.at).total_seconds() < 0.5]) == 4
    assert len(hedged) == 4 * 3  # three scheduled probes teach it the usual first token
    assert all(h.at < scheduled[3].at for h in hedged)
    assert detector.hedge_after() == pytest.approx(1.5, abs=0.1)
    assert all(r.ttft_ms > 450 for r in scheduled)


async def test_stop_leaves_no_probe_or_hedge_running_past_its_grace(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "hang", "route": "gemini"}))
    hanging = emulator.target("gemini", deadlines=Deadlines(connect=1, first_token=30, total=30, stall=30))
    seen = []

    async def handle(watch, result, confirm):
        seen.append(result)

    scheduler = Scheduler(watches=[Watch(hanging, 0.3)], client=client, handle=handle, seed=3,
                          hedge_after=lambda w: 0.1, hedges=lambda w, started, confirm: 3)
    scheduler.start()
    await asyncio.sleep(0.8)
    assert scheduler.watches["gemini"].inflight == 4  # the hung probe and its three hedges
    loop = asyncio.get_running_loop()
    began = loop.time()
    await scheduler.stop(grace=0.3)
    assert loop.time() - began < 2.0
    assert scheduler.watches["gemini"].inflight == 0 and not scheduler._inflight
    await asyncio.sleep(0.3)
    assert seen == []  # nothing handled after the watch stopped (its writer may be closed)


async def test_two_probes_waiting_in_the_same_tick_send_one_round_of_hedges_between_them(monkeypatch, emulator,
                                                                                          client):
    # A unit test of the counting (a stand-in probe that never sees a first token): two probes of
    # one target reach hedge_after together; the hedges the first sends count for the second at once.
    calls = []

    async def waiting_probe(target, *, client, first_token=None):
        calls.append(target.name)
        await asyncio.sleep(0.4)
        return ProbeResult(target=target.name, provider="openai", model="m", at=datetime.now(UTC),
                           status=Status.DOWN, error_kind=ErrorKind.FIRST_TOKEN_TIMEOUT, total_ms=400.0)

    monkeypatch.setattr(schedule, "probe", waiting_probe)

    async def handle(watch, result, confirm):
        return None

    scheduler = Scheduler(watches=[Watch(emulator.target("openai"), 60.0)], client=client, handle=handle,
                          hedge_after=lambda w: 0.1, hedges=lambda w, started, confirm: 4)
    now = datetime.now(UTC)
    await asyncio.gather(scheduler._run("openai", False, now), scheduler._run("openai", True, now))
    while scheduler._inflight:  # the hedges (the APScheduler side is not started here)
        await asyncio.wait(set(scheduler._inflight))
    assert scheduler.watches["openai"].inflight == 0
    assert len(calls) == 5  # the two, and three hedges: four probes besides each, never more
