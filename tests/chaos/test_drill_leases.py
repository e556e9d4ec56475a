"""A drill's faults stay in force or the drill knows it: a lease that runs out under a stall is
put back, and what met the gap is left out of the figures (`chaos.drill.leases`)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chaos.control.client import ControlClient, Refused, Unreachable
from chaos.drill.leases import Held, Lapse, Leases
from chaos.drill.report import PhaseRun, Tally
from chaos.faults import Fault, FaultSet
from chaos.faults.plan import LAPSES_KEPT
from chaos.proxy import FaultProxy
from chaos.proxyserve import serve_proxy
from tests.chaos.test_drill import spec
from tests.chaos.test_drill_tally import ENTRY, FEATURES, RECORD, SPANS, _reference

# -- the proxy's side: a lapsed fault is told apart from a removed one -----------------------------


def test_a_fault_set_remembers_which_faults_lapsed_and_when():
    faults = FaultSet()
    faults.add(Fault.from_dict({"type": "overloaded", "id": "a", "for_s": 5}, now=100.0))
    faults.add(Fault.from_dict({"type": "overloaded", "id": "b", "for_s": 5}, now=100.0))
    assert faults.lapsed_at("a", now=104.0) is None  # still in force
    faults.remove("b")
    assert faults.lapsed_at("a", now=106.0) == 105.0 and faults.active(106.0) == []
    assert faults.lapsed_at("b", now=106.0) is None  # removed, not lapsed
    faults.add(Fault.from_dict({"type": "overloaded", "id": "a", "for_s": 5}, now=106.0))
    assert faults.lapsed_at("a", now=107.0) is None  # back in force: no longer a lapsed fault
    faults.clear()
    assert faults.lapsed_at("a", now=200.0) is None


def test_the_lapsed_faults_remembered_are_bounded():
    faults = FaultSet()
    for i in range(LAPSES_KEPT + 10):
        faults.add(Fault.from_dict({"type": "overloaded", "id": f"f{i}", "for_s": 1}, now=float(i)))
        faults.active(now=i + 2.0)
    assert faults.lapsed_at("f0", now=1e6) is None  # the oldest are forgotten
    assert faults.lapsed_at(f"f{LAPSES_KEPT + 9}", now=1e6) == LAPSES_KEPT + 10.0
    assert len(faults._lapsed) == LAPSES_KEPT


@pytest.fixture
def proxy_url() -> Iterator[str]:
    """A fault proxy (no routes: only its control API is used) on its own event loop thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict = {}

    async def main() -> None:
        box["running"] = await serve_proxy(FaultProxy({}), port=0)
        box["stop"] = asyncio.Event()
        ready.set()
        await box["stop"].wait()
        await box["running"].stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["running"].url
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(10)


def test_a_renewal_after_the_lease_ran_out_is_told_apart_from_one_after_a_removal(proxy_url):
    with ControlClient(proxy_url) as client:
        client.add({"type": "overloaded", "id": "lapses", "for_s": 0.2})
        client.add({"type": "overloaded", "id": "removed", "for_s": 60})
        client.remove("removed")
        time.sleep(0.3)
        with pytest.raises(Refused) as lapsed:
            client.renew("lapses", 5)
        with pytest.raises(Refused) as removed:
            client.renew("removed", 5)
    assert lapsed.value.status == removed.value.status == 404
    assert lapsed.value.message.startswith("fault 'lapses': its lease ended at ")
    assert time.time() - 1 < lapsed.value.body["lapsed_at"] < time.time()
    assert "lapsed_at" not in removed.value.body and "no such fault" in removed.value.message


# -- the runner's side: Leases ----------------------------------------------------------------------


def test_a_lapsed_fault_is_put_back_and_its_gap_recorded(proxy_url):
    with ControlClient(proxy_url) as client:
        leases = Leases(client, "run", 0.3)
        leases.add(1, "down", [{"type": "overloaded"}, {"type": "server_error"}])
        first = leases.until
        assert time.time() < first <= time.time() + 0.3
        assert leases.renew() == [] and leases.until >= first  # renewed in time: no gap
        time.sleep(0.5)  # a stall past the lease
        before = time.time()
        lapses = leases.renew()
        assert [(x.phase, x.fault, x.type) for x in lapses] == [("down", "run-p1-0", "overloaded"),
                                                                 ("down", "run-p1-1", "server_error")]
        for lapse in lapses:
            assert lapse.start < before <= lapse.end <= time.time()  # from the lease's end to its return
        assert leases.lapses == lapses and leases.gone is None
        assert {f["id"] for f in client.faults()} == {"run-p1-0", "run-p1-1"}  # in force again
        assert leases.until > before
        leases.remove_all()
        assert client.faults() == [] and leases.until == float("inf") and leases.active == []


def test_a_fault_that_lapsed_before_its_removal_is_a_gap_to_the_removal(proxy_url):
    with ControlClient(proxy_url) as client:
        leases = Leases(client, "run", 0.2)
        leases.add(0, "down", [{"type": "hang"}])
        expired = leases.until
        time.sleep(0.3)
        [lapse] = leases.remove_all()
        assert lapse.start == expired and lapse.end > expired and lapse.type == "hang"
        assert leases.lapses == [lapse] and client.faults() == []


def test_a_fault_removed_by_someone_else_is_not_put_back_but_said(proxy_url):
    with ControlClient(proxy_url) as client:
        leases = Leases(client, "run", 30)
        leases.add(2, "down", [{"type": "overloaded"}])
        client.clear()  # an operator stopping the damage: `airisk fault clear`
        assert leases.renew() == []
        assert leases.gone is not None and "'run-p2-0' was removed from the proxy" in leases.gone
        assert client.faults() == [] and leases.active == []


class _Flaky:
    """A control API for `Leases` whose answers the test sets: ``down`` makes every call fail as an
    unreachable proxy does; ``lapsed`` names faults whose next renewal finds their lease ended."""

    def __init__(self) -> None:
        self.down = False
        self.refuse_add = False
        self.lapsed: dict[str, float] = {}
        self.faults: set[str] = set()

    def _check(self) -> None:
        if self.down:
            raise Unreachable("connection refused")

    def add(self, body):
        self._check()
        if self.refuse_add:
            raise Refused(503, "busy")
        self.faults.add(body["id"])
        return {"id": body["id"]}

    def renew(self, fault_id, for_s):
        self._check()
        if fault_id in self.lapsed:
            self.faults.discard(fault_id)
            raise Refused(404, "lease ended", {"error": "lease ended", "lapsed_at": self.lapsed.pop(fault_id)})
        return {"id": fault_id}

    def remove(self, fault_id):
        self._check()
        self.faults.discard(fault_id)
        return {"removed": fault_id}


def test_renewals_that_fail_cost_nothing_until_a_whole_lease_past_what_is_known():
    clock = [100.0]
    api = _Flaky()
    leases = Leases(api, "run", 5, clock=lambda: clock[0])  # type: ignore[arg-type]
    leases.add(1, "down", [{"type": "overloaded"}])
    assert leases.until == 105.0
    api.down = True
    clock[0] = 101.0
    assert leases.renew() == [] and leases.trouble is not None and "connection refused" in leases.trouble
    assert leases.gone is None and leases.until == 105.0  # what is known stays known; nothing raised
    clock[0] = 109.0
    leases.renew()
    assert leases.gone is None  # within a lease past it: the next answered renewal finds any gap
    clock[0] = 110.5
    leases.renew()
    assert leases.gone is not None and "has not kept the drill's faults" in leases.gone


def test_a_lapsed_fault_the_proxy_would_not_take_back_is_tried_again_and_its_gap_runs_till_then():
    clock = [100.0]
    api = _Flaky()
    leases = Leases(api, "run", 5, clock=lambda: clock[0])  # type: ignore[arg-type]
    leases.add(1, "down", [{"type": "overloaded"}, {"type": "hang"}])
    clock[0] = 107.0
    api.lapsed = {"run-p1-0": 105.0, "run-p1-1": 105.2}
    api.refuse_add = True
    assert leases.renew() == [] and leases.trouble is not None and leases.lapses == []
    assert leases.until == 105.0  # not in force since: what reaches past it waits
    clock[0] = 108.0
    api.refuse_add = False
    back = leases.renew()
    assert [(x.fault, x.start, x.end) for x in back] == [("run-p1-0", 105.0, 108.0), ("run-p1-1", 105.0, 108.0)]
    assert leases.lapses == back and leases.trouble is None and api.faults == {"run-p1-0", "run-p1-1"}
    assert leases.until == 113.0


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)


@settings(max_examples=200, deadline=None)
@example(body={"lapsed_at": float("nan")}, status=404).via("not a time")
@example(body={"lapsed_at": float("-inf")}, status=404).via("not a time")
@example(body={"lapsed_at": True}, status=404).via("a bool is an int")
@given(body=JSON | st.dictionaries(st.just("lapsed_at"), JSON), status=st.sampled_from([400, 404, 409, 500, 503]))
def test_whatever_a_proxy_answers_to_a_renewal_the_drill_goes_on_or_says_why(body, status):
    """A renewal's error answer is the proxy's (any JSON): a lapse (put back, its gap from what the
    runner knew), a removal (said in `gone`), or a failure noted in `trouble`; nothing raises."""
    clock = [100.0]

    class Answers(_Flaky):
        def renew(self, fault_id, for_s):
            raise Refused(status, "no", body)

    api = Answers()
    leases = Leases(api, "run", 5, clock=lambda: clock[0])  # type: ignore[arg-type]
    leases.add(1, "down", [{"type": "overloaded"}])
    clock[0] = 101.0
    lapses = leases.renew()
    lapsed_at = body.get("lapsed_at") if isinstance(body, dict) else None
    if status != 404:
        assert lapses == [] and leases.trouble is not None and leases.gone is None
    elif type(lapsed_at) in (int, float):
        [lapse] = lapses
        assert lapse.start == 105.0 and lapse.end == 101.0 and api.faults == {"run-p1-0"}
    else:
        assert lapses == [] and leases.gone is not None and leases.active == []


# -- Held: what met a gap is left out, the rest is counted as before -------------------------------


class _Leases:
    """What `Held` reads of `Leases`, moved by the test's clock."""

    def __init__(self) -> None:
        self.until = float("inf")
        self.lapses: list[Lapse] = []


def _held_online(records: list[dict], entries: list[dict], gap: tuple[float, float], renew_at: float):
    """As the runner sees it, with one lapse in the faulted phase: up to the renewal that finds it,
    the faults are known to hold only until the gap's start; from it on, the gap is known."""
    leases = _Leases()
    tally = Tally(spec(), started_at=0.0)
    held = Held(leases, tally)  # type: ignore[arg-type]
    events = []
    for name, start, end, faulted in SPANS:
        run = PhaseRun(name, start, 0.0, [{"type": "overloaded"}] if faulted else [])
        events.append((start, 0, "begin", run, end, faulted))
        events.append((end, 0, "end", run, end, faulted))
    events.append((renew_at, 0, "renew", None, None, None))
    events += [(r["_arrives"], 1, "record", r, None, None) for r in records]
    events += [(e["_arrives"], 1, "entry", e, None, None) for e in entries]
    for _, _, kind, item, end, faulted in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == "begin":
            tally.begin(item)
            if faulted:
                leases.until = gap[0]  # its last renewal before the stall said so
        elif kind == "end":
            item.end = end
            tally.end(item)
            leases.until = float("inf")  # removed
            held.release()
        elif kind == "renew":
            leases.lapses.append(Lapse("down", "f", "overloaded", None, *gap))
            leases.until = renew_at + 5
            held.release()
        elif kind == "record":
            held.add_records([item])
        else:
            held.add_entries([item])
    return tally.result(ended_at=30.0), held


@settings(max_examples=60, deadline=None)
@given(records=st.lists(RECORD, min_size=20, max_size=150), entries=st.lists(ENTRY, max_size=30),
       gap=st.tuples(st.floats(10, 18), st.floats(0.1, 1.4)), late=st.floats(0, 0.5))
def test_records_and_entries_that_met_a_lapse_are_left_out_and_the_rest_counted(records, entries, gap, late):
    # (the renewal that finds the gap comes before the phase's end, at 20: one at its end is `remove_all`'s)
    start, length = gap
    gap = (start, start + length)
    online, held = _held_online(records, entries, gap, renew_at=gap[1] + late)
    met = [r for r in records if r["t"] < gap[1] and r["t"] + r["ms"] / 1000 >= gap[0]]
    expected, _, _ = _reference([r for r in records if r not in met],
                                [e for e in entries if not gap[0] <= e["at"] < gap[1]])
    _, _, timeline = _reference(records, entries)  # the timeline is what the product saw: all of it
    by = {f.feature: f for f in online.features}
    for f in FEATURES:
        assert by[f].phases == expected["phases"][f], f
        assert by[f].during_faults == expected["during"][f], f
    assert online.timeline == timeline
    [(left_records, left_entries)] = held.left_out.values() or [(0, 0)]
    assert left_records == len(met) and left_entries == sum(gap[0] <= e["at"] < gap[1] for e in entries)
    [note] = held.notes()
    assert note.startswith("down: fault overloaded lapsed for ") and f"the {len(met):,} requests" in note
