"""The watch loop over the real emulator: intervals, spread, confirmations, isolation."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import statistics
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from chaos.faults import Fault
from monitor import schedule
from monitor.config.detection import DetectionConfig
from monitor.detect import HEDGE_FACTOR, Detector
from monitor.schedule import Scheduler, Watch
from probes import Deadlines, ErrorKind, ProbeResult, Status
from tests.conftest import until


async def _collect(emulator, client, watches, done, *, within=10.0, confirm_after=None):
    """Runs the watches until ``done(seen)`` holds (or fails after ``within`` s), then stops."""
    seen = defaultdict(list)

    async def handle(watch, result, confirm, sibling):
        seen[watch.target.name].append((result, confirm))
        if confirm_after is not None and not result.ok and not confirm:
            return confirm_after
        return None

    scheduler = Scheduler(watches=watches, client=client, handle=handle, seed=3)
    scheduler.start()
    try:
        await until(lambda: done(seen), within, "the results wanted")
    finally:
        await scheduler.stop(grace=2.0)
    return seen


def _median_gap(runs) -> float:
    starts = sorted(r.at for r, _ in runs)
    return statistics.median((b - a).total_seconds() for a, b in itertools.pairwise(starts))


async def test_each_target_probes_on_its_own_interval(emulator, client):
    watches = [Watch(emulator.target("openai"), 0.3), Watch(emulator.target("anthropic"), 0.6)]
    seen = await _collect(emulator, client, watches, lambda s: len(s["openai"]) >= 7 and len(s["anthropic"]) >= 4)
    assert all(r.ok for runs in seen.values() for r, _ in runs)
    # The median gap between starts is each target's own interval: a late run shortens the next
    # gap, so load moves single gaps, not the median. +-1/3 of the interval keeps 0.3 s and 0.6 s
    # apart (0.2-0.4 vs 0.4-0.8): one interval for both targets, or none honoured, fails.
    assert _median_gap(seen["openai"]) == pytest.approx(0.3, abs=0.1)
    assert _median_gap(seen["anthropic"]) == pytest.approx(0.6, abs=0.2)


async def test_a_failure_triggers_a_quick_confirmation_probe(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
    watches = [Watch(emulator.target("anthropic"), 5.0)]
    seen = await _collect(emulator, client, watches, lambda s: len(s["anthropic"]) >= 2, confirm_after=0.2)
    kinds = [(r.error_kind, confirm) for r, confirm in seen["anthropic"]]
    assert kinds[:2] == [(ErrorKind.OVERLOADED, False), (ErrorKind.OVERLOADED, True)]


async def test_a_hanging_provider_does_not_delay_the_others(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "hang", "route": "gemini"}))
    hanging = emulator.target("gemini", deadlines=Deadlines(connect=1, first_token=30, total=30, stall=30))
    watches = [Watch(hanging, 0.2), Watch(emulator.target("openai"), 0.2)]
    # Five openai results take ~1 s; openai stuck behind the hung probe would get none before
    # gemini's 30 s first-token deadline, so the 10 s timeout separates the two.
    seen = await _collect(emulator, client, watches, lambda s: len(s["openai"]) >= 5, within=10.0)
    assert len(seen["gemini"]) <= 1  # hung until stop: no overlapping runs piled up behind it
    # openai's runs started on time: loop lag on a loaded machine stays well under 1 s; a run held
    # behind the hang would wait out its 30 s deadline (or be dropped as misfired past 1 s, and
    # then the count above would not be reached).
    assert max(watches[1].delays_ms) < 1000


async def _hedged(emulator, client, watches, seconds, *, hedges=3, hedge_after=0.3, confirm_after=None,
                  max_concurrency=64):
    seen = defaultdict(list)

    async def handle(watch, result, confirm, sibling):
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
    # Sent together, hedge_after (0.3 s) into the first probe: not one first-token deadline after
    # another. 0.9 leaves 0.6 s for loop lag and stays below the first probe's 1.0 s first-token
    # deadline, the earliest a confirmation sent after its result could go.
    for r in hedged:
        assert 0.25 <= (r.at - first.at).total_seconds() <= 0.9
    # The first probe's result asked for a confirmation while three were still in flight: only the
    # last of them to end asks again, so no fifth probe went within the hedges' deadline.
    assert all((r.at - first.at).total_seconds() > 1.25 for r, _ in runs[4:])


async def test_a_probe_that_answers_slowly_is_not_hedged(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "slow_tokens", "route": "openai", "params": {"gap_ms": 150}}))
    # First token after ~20 ms, then 7 gaps of 150 ms (~1.07 s in all). hedge_after 0.5 s and a 2 s
    # stall leave room for a loaded machine; the answer still streams well past hedge_after.
    slow = emulator.target("openai", deadlines=Deadlines(connect=2.0, first_token=3.0, total=6.0, stall=2.0))
    seen = await _hedged(emulator, client, [Watch(slow, 0.6)], 2.5, hedge_after=0.5)
    runs = seen["openai"]
    assert runs and all(r.ok for r, _ in runs)
    assert runs[0][0].total_ms > 900  # still streaming past hedge_after: the first token is what counts
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

    async def handle(watch, result, confirm, sibling):
        seen.append((result, confirm))
        return detector.feed(result, confirm=confirm).confirm_in

    # A 3 s first-token deadline: the 0.5 s first tokens of five probes at once stay ok on a loaded
    # machine, and the scheduler's cap on hedge_after (0.75 of it: 2.25 s) stays above the learnt
    # ~1.6 s, so it is the learnt value that stops the hedges, with a second to spare.
    target = emulator.target("openai", deadlines=Deadlines(connect=2.0, first_token=3.0, total=6.0, stall=2.0))
    scheduler = Scheduler(watches=[Watch(target, 1.0)], client=client, handle=handle, seed=3,
                          hedge_after=lambda w: detector.hedge_after(),
                          hedges=lambda w, started, confirm: detector.hedges(at=started, confirm=confirm))
    scheduler.start()
    try:
        await until(lambda: sum(not confirm for _, confirm in seen) >= 6, 30.0, "six scheduled probes")
    finally:
        await scheduler.stop(grace=3.0)
    assert all(r.ok for r, _ in seen)
    scheduled = [r for r, confirm in seen if not confirm]  # never overlapping: in the order they started
    hedged = [r for r, confirm in seen if confirm]
    # Each hedge counts for the latest scheduled probe started before it: hedges go 0.2 s into a
    # probe, a hedge of a hedge 0.4 s (and counts there too), the next round 1.0 s later.
    rounds = [0] * len(scheduled)
    for h in hedged:
        rounds[max(i for i, base in enumerate(scheduled) if base.at <= h.at)] += 1
    # Each round of hedges is the four a DOWN would need, no pile-up; the three scheduled probes
    # before the third result teach it the usual first token. The fourth probe starts 0.5 s after
    # that result is handled, unless the machine lags that long: hedged or not, but never partly.
    assert rounds[:3] == [4, 4, 4]
    assert rounds[3] in (0, 4)
    assert rounds[4:] == [0] * (len(scheduled) - 4)  # at least two probes after learning: none hedged
    # hedge_after is HEDGE_FACTOR x the median first token of the scheduled probes in the detector's
    # window (every result goes there while the target is UP), not of the hedges...
    window = seen[-detector.config.window:]
    usual = HEDGE_FACTOR * statistics.median(r.ttft_ms for r, confirm in window if not confirm) / 1000
    assert detector.hedge_after() == pytest.approx(usual)
    # ...which is 3x a first token held 0.5 s (and, even on a loaded machine, seen within 1 s).
    assert 1.5 <= detector.hedge_after() < 3.0
    assert all(r.ttft_ms > 450 for r in scheduled)


async def test_stop_leaves_no_probe_or_hedge_running_past_its_grace(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "hang", "route": "gemini"}))
    hanging = emulator.target("gemini", deadlines=Deadlines(connect=1, first_token=30, total=30, stall=30))
    seen = []

    async def handle(watch, result, confirm, sibling):
        seen.append(result)

    scheduler = Scheduler(watches=[Watch(hanging, 0.3)], client=client, handle=handle, seed=3,
                          hedge_after=lambda w: 0.1, hedges=lambda w, started, confirm: 3)
    scheduler.start()
    watch = scheduler.watches["gemini"]
    await until(lambda: watch.inflight >= 4, 5.0, "the hung probe and its three hedges in flight")
    # No more after another interval and hedge_after: the next run waits (max_instances=1) and the
    # hedges, themselves counted, send none. (All hang for 30 s, so nothing ends meanwhile.)
    await asyncio.sleep(0.5)
    assert watch.inflight == 4  # the hung probe and its three hedges
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

    async def handle(watch, result, confirm, sibling):
        return None

    scheduler = Scheduler(watches=[Watch(emulator.target("openai"), 60.0)], client=client, handle=handle,
                          hedge_after=lambda w: 0.1, hedges=lambda w, started, confirm: 4)
    now = datetime.now(UTC)
    await asyncio.gather(scheduler._run("openai", False, now), scheduler._run("openai", True, now))
    while scheduler._inflight:  # the hedges (the APScheduler side is not started here)
        await asyncio.wait(set(scheduler._inflight))
    assert scheduler.watches["openai"].inflight == 0
    assert len(calls) == 5  # the two, and three hedges: four probes besides each, never more


async def test_the_scheduling_delays_kept_are_bounded(monkeypatch, emulator, client):
    # Every run adds its delay; a target probed every 10 s for days keeps only the latest few.
    async def quick_probe(target, *, client, first_token=None):
        return ProbeResult(target=target.name, provider="openai", model="m", at=datetime.now(UTC),
                           status=Status.UP, error_kind=ErrorKind.OK, total_ms=1.0)

    monkeypatch.setattr(schedule, "probe", quick_probe)

    async def handle(watch, result, confirm, sibling):
        return None

    scheduler = Scheduler(watches=[Watch(emulator.target("openai"), 10.0)], client=client, handle=handle)
    for _ in range(300):
        await scheduler._run("openai", False, datetime.now(UTC))
    delays = scheduler.watches["openai"].delays_ms
    assert len(delays) <= 100  # 300 before (up to 1,000 a target)
    assert max(delays) < 1000


async def test_a_nudge_probes_at_once_as_a_sibling_probe_and_never_twice_at_a_time(emulator, client):
    seen = []

    async def handle(watch, result, confirm, sibling):
        seen.append((result, confirm, sibling))

    scheduler = Scheduler(watches=[Watch(emulator.target("openai"), 3600.0)], client=client, handle=handle, seed=3)
    scheduler.start()
    try:
        sent = scheduler.nudge("openai"), scheduler.nudge("openai")  # the second finds the first coming
        await until(lambda: len(seen) == 1, 5.0, "the nudged probe")
        await until(lambda: scheduler.watches["openai"].inflight == 0, 5.0, "the nudged probe to end")
        again = scheduler.nudge("openai")
        await until(lambda: len(seen) == 2, 5.0, "the second nudged probe")
    finally:
        await scheduler.stop(grace=2.0)
    assert sent == (True, False) and again
    # (The first scheduled run is somewhere in the next hour: these two are the nudges.)
    assert [(r.ok, confirm, sibling) for r, confirm, sibling in seen] == [(True, False, True)] * 2
    assert not scheduler.nudge("openai")  # stopped


async def test_a_nudge_waits_for_a_confirmation_already_coming_and_is_hedged_as_a_scheduled_probe(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "hang", "route": "gemini", "params": {"seconds": 1.5}}))
    hanging = emulator.target("gemini", deadlines=Deadlines(connect=1, first_token=1.0, total=5, stall=5))
    seen, asked = [], []

    async def handle(watch, result, confirm, sibling):
        seen.append((result, confirm, sibling))
        return 30.0 if sibling else None  # the sibling probe fails: a confirmation in 30 s

    def hedges(watch, started, confirm):
        asked.append(confirm)
        return 0

    scheduler = Scheduler(watches=[Watch(hanging, 3600.0)], client=client, handle=handle, seed=3,
                          hedge_after=lambda w: 0.2, hedges=hedges)
    scheduler.start()
    try:
        assert scheduler.nudge("gemini")
        await until(lambda: seen and scheduler.watches["gemini"].inflight == 0, 10.0, "the sibling probe")
        refused = scheduler.nudge("gemini")  # its confirmation is coming: that probe will tell
    finally:
        await scheduler.stop(grace=2.0)
    assert not refused
    [(result, confirm, sibling)] = seen
    assert (result.error_kind, confirm, sibling) == (ErrorKind.FIRST_TOKEN_TIMEOUT, False, True)
    assert asked == [False]  # hedged as the scheduled probe it stands in for, not as a confirmation
