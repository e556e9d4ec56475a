"""A drill's figures are counted as records and proxy log entries arrive, in bounded memory, with the
same result as over whole lists; whatever is sampled or cut is said in the result and its outputs."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

import chaos.drill.report as report
from chaos.drill.output import summary_table, write_junit
from chaos.drill.report import PhaseRun, Tally, analyse
from chaos.drill.runner import ProxyLog
from tests.chaos.test_drill import spec

FEATURES = ("desc", "tags", "chat")
SPANS = [("base", 0.0, 10.0, False), ("down", 10.0, 20.0, True), ("after", 20.0, 30.0, False)]


def _phases() -> list[PhaseRun]:
    return [PhaseRun(name, start, end, [{"type": "overloaded"}] if faulted else []) for name, start, end, faulted
            in SPANS]


RECORD = st.builds(
    lambda t, ms, f, kind, delay: {"t": t, "f": f, "ms": ms, "ok": kind == "ok", "deg": kind == "deg",
                                   "s": 200, "k": None if kind != "fail" else "http_503",
                                   "b": "openai" if kind != "fail" else None, "_arrives": t + ms / 1000 + delay},
    st.floats(0, 29.99), st.floats(0, 4000), st.sampled_from(FEATURES),
    st.sampled_from(["ok", "ok", "ok", "deg", "fail"]),  # full answers likelier: recoveries get tried
    st.floats(0.001, 1.5))
ENTRY = st.builds(
    lambda at, f, route, status, delay: {"at": at, "feature": f, "route": route, "status": status,
                                         "_arrives": at + delay},
    st.floats(0, 29.99), st.sampled_from(FEATURES), st.sampled_from(["openai", "local"]),
    st.sampled_from([200, 503]), st.floats(0.001, 3))


def _online(records: list[dict], entries: list[dict]) -> report.DrillResult:
    """As the runner sees it: a phase begins, records and entries arrive once their request ended
    (in any order across processes), the phase ends."""
    tally = Tally(spec(), started_at=0.0)
    events = []
    for name, start, end, faulted in SPANS:
        run = PhaseRun(name, start, 0.0, [{"type": "overloaded"}] if faulted else [])
        events.append((start, 0, "begin", run, end))
        events.append((end, 0, "end", run, end))
    events += [(r["_arrives"], 1, "record", r, None) for r in records]
    events += [(e["_arrives"], 1, "entry", e, None) for e in entries]
    for _, _, kind, item, end in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == "begin":
            tally.begin(item)
        elif kind == "end":
            item.end = end
            tally.end(item)
        elif kind == "record":
            tally.add_records([item])
        else:
            tally.add_entries([item])
    return tally.result(ended_at=30.0)


def _reference(records: list[dict], entries: list[dict]) -> tuple[dict, dict, list]:
    """The figures computed the plain way, every record in a list (how the runner did it before it
    counted as they arrived): per feature, its phases' stats, its stats during the faults, its
    recovery; and the timeline."""
    def stats(recs, ents):
        lat = [r["ms"] for r in recs]
        errors, backends, routes = {}, {}, {}
        for r in recs:
            if not r["ok"] and not r["deg"]:
                errors[r["k"] or "unknown"] = errors.get(r["k"] or "unknown", 0) + 1
            if r.get("b") and (r["ok"] or r["deg"]):
                backends[r["b"]] = backends.get(r["b"], 0) + 1
        for e in ents:
            if 200 <= e["status"] < 300:
                routes[e["route"]] = routes.get(e["route"], 0) + 1
        return report.Stats(len(recs), sum(r["ok"] for r in recs), sum(bool(r["deg"] and not r["ok"]) for r in recs),
                            sum(not r["ok"] and not r["deg"] for r in recs), report.pct(lat, 50), report.pct(lat, 95),
                            errors, backends, routes)

    def inside(recs, start, end):
        return [r for r in recs if start <= r["t"] < end and r["t"] + r["ms"] / 1000 <= end]

    phases, during, recovery = {}, {}, {}
    for f in FEATURES:
        recs = sorted((r for r in records if r["f"] == f), key=lambda r: r["t"])
        ents = [e for e in entries if e["feature"] == f]
        phases[f] = {name: stats(inside(recs, s, e), [x for x in ents if s <= x["at"] < e]) for name, s, e, _ in SPANS}
        during[f] = stats(inside(recs, 10, 20), [x for x in ents if 10 <= x["at"] < 20])
        recovery[f] = 0.0 if during[f].ok == during[f].requests else None
        if recovery[f] is None:
            after, run = [r for r in recs if r["t"] >= 20], 0
            for i, r in enumerate(after):
                run = run + 1 if r["ok"] else 0
                if run == 3:
                    recovery[f] = round(max(0.0, after[i - 2]["t"] - 20), 3)
                    break
    buckets: dict = {}
    for r in records:
        buckets.setdefault((int(r["t"]), r["f"]), []).append(r)
    timeline = [{"s": s, "feature": f, "n": len(rs), "ok": sum(r["ok"] for r in rs), "deg": sum(r["deg"] for r in rs),
                 "p50_ms": report.pct([r["ms"] for r in rs], 50)} for (s, f), rs in sorted(buckets.items())]
    return {"phases": phases, "during": during, "recovery": recovery}, {}, timeline


@settings(max_examples=60, deadline=None)
# Starts unique: two requests never start at the same instant, and with a tie "in start order" (the
# recovery's) has no one answer (hypothesis found 4 requests at exactly 20.0 s, counted in two orders).
@given(records=st.lists(RECORD, min_size=20, max_size=150, unique_by=lambda r: r["t"]),
       entries=st.lists(ENTRY, max_size=30))
def test_counting_as_records_arrive_gives_what_the_whole_list_gives(records, entries):
    online = _online(records, entries)
    whole = analyse(spec(), records, _phases(), entries, started_at=0.0, ended_at=30.0)
    expected, _, timeline = _reference(records, entries)
    for result in (online, whole):
        by = {f.feature: f for f in result.features}
        for f in FEATURES:
            assert by[f].phases == expected["phases"][f], f
            assert by[f].during_faults == expected["during"][f], f
            assert by[f].recovery_s == expected["recovery"][f], f
        assert result.timeline == timeline and result.notes == []


def _many(n: int, feature: str = "desc", *, start: float = 10.0, span: float = 9.0, ok=lambda i: True) -> list:
    return [{"t": start + span * i / n, "f": feature, "ms": float(i % 1000), "ok": ok(i), "deg": False, "s": 200,
             "k": None if ok(i) else "http_503", "b": "openai"} for i in range(n)]


def test_latencies_are_a_bounded_uniform_sample_and_the_result_says_so(monkeypatch):
    monkeypatch.setattr(report, "LATENCY_SAMPLE", 200)
    tally = Tally(spec(), started_at=0.0, seed=1)
    for run in _phases():
        tally.begin(run)
        tally.end(run)
    records = _many(20_000)
    random.Random(2).shuffle(records)
    for i in range(0, len(records), 500):
        tally.add_records(records[i:i + 500])
    kept = [len(c.latencies.values) for c in [*tally._phase.values(), *tally._during.values()]]
    assert max(kept) == 200  # not 20,000
    result = tally.result(ended_at=30.0)
    desc = next(f for f in result.features if f.feature == "desc")
    assert desc.during_faults.requests == 20_000 and desc.during_faults.ok == 20_000  # counts stay exact
    assert 400 <= desc.during_faults.p50_ms <= 600 and 900 <= desc.during_faults.p95_ms <= 999  # true: 499, 949
    assert any("uniform sample of 200 requests" in n and "desc in down (20,000)" in n for n in result.notes)
    assert any("per-second p50 from a sample" in n for n in result.notes)


def test_recovery_keeps_only_the_earliest_requests_after_the_faults_and_says_so(monkeypatch):
    monkeypatch.setattr(report, "RECOVERY_KEPT", 50)
    never = _many(500, start=20.0, ok=lambda i: False)
    result = analyse(spec(), _many(10, ok=lambda i: False) + never, _phases(), [], started_at=0, ended_at=30)
    desc = next(f for f in result.features if f.feature == "desc")
    assert desc.recovery_s is None
    assert any("recovery of desc judged on the first 50 requests after the faults (450 later" in n
               for n in result.notes)
    # Kept the earliest: a recovery among them is still found, whatever order the records came in.
    late_ok = _many(500, start=20.0, ok=lambda i: i >= 5)
    random.Random(3).shuffle(late_ok)
    result = analyse(spec(), _many(10, ok=lambda i: False) + late_ok, _phases(), [], started_at=0, ended_at=30)
    assert next(f for f in result.features if f.feature == "desc").recovery_s == 0.09  # 5 * 9 s / 500


class FakeProxyLog:
    """A proxy's request log: a ring of the newest ``size`` entries, read by id."""

    def __init__(self, size: int = 10_000) -> None:
        self.size, self.entries = size, []

    def write(self, n: int, *, at: float = 15.0, done: bool = True, route: str = "local") -> None:
        for _ in range(n):
            entry = {"id": len(self.entries) + 1, "at": at, "feature": "chat", "route": route, "status": 200}
            if done:
                entry["total_ms"] = 1.0
            self.entries.append(entry)

    def log_after(self, position: int) -> list[dict]:
        return [dict(e) for e in self.entries[-self.size:] if e["id"] > position]


def _tally() -> Tally:
    tally = Tally(spec(), started_at=0.0)
    for run in _phases():
        tally.begin(run)
        tally.end(run)
    return tally


def test_every_proxy_log_entry_is_counted_and_the_store_gets_a_bounded_sample():
    fake, tally = FakeProxyLog(), _tally()
    log = ProxyLog(fake, 0, since=-1, tally=tally, seed=1)
    for _ in range(5):  # 25,000 entries in all, read as they come: more than the ring ever holds
        fake.write(5_000)
        log.poll()
    log.poll(final=True)
    result = tally.result(ended_at=30.0)
    chat = next(f for f in result.features if f.feature == "chat")
    assert chat.during_faults.routes == {"local": 25_000}
    assert len(log.entries) == 10_000 and log.lost == 0
    assert log.notes() == ["proxy log: a uniform sample of 10,000 of its 25,000 entries is stored"]


def test_entries_gone_from_the_ring_before_they_were_read_are_counted_as_lost():
    fake, tally = FakeProxyLog(size=100), _tally()
    log = ProxyLog(fake, 0, since=-1, tally=tally)
    fake.write(50)
    log.poll()
    fake.write(250)  # 150 of these left the ring before the next read
    log.poll(final=True)
    assert log.lost == 150 and log.seen == 150
    assert "150 entries left the proxy's ring before they were read" in log.notes()[0]


def test_an_open_entry_is_read_again_until_it_finishes_and_counted_once():
    fake, tally = FakeProxyLog(), _tally()
    log = ProxyLog(fake, 0, since=-1, tally=tally)
    fake.write(1, done=False)  # a hanging request
    fake.write(3)
    log.poll()
    assert log.seen == 3 and log.cursor == 0
    fake.entries[0]["total_ms"] = 30_000.0
    fake.write(2)
    log.poll()
    log.poll(final=True)
    assert log.seen == 6 and log.cursor == 6
    chat = next(f for f in tally.result(ended_at=30.0).features if f.feature == "chat")
    assert chat.during_faults.routes == {"local": 6}


def test_the_outputs_show_the_notes(tmp_path):
    result = analyse(spec(), _many(10), _phases(), [], started_at=0, ended_at=30)
    result.notes = ["proxy log: a uniform sample of 10,000 of its 25,000 entries is stored"]
    console = Console(width=200, record=True)
    console.print(summary_table(result))
    assert "note: proxy log: a uniform sample of 10,000 of its 25,000 entries is stored" in console.export_text()
    write_junit(result, tmp_path / "j.xml")
    suite = ET.parse(tmp_path / "j.xml").getroot()
    assert "uniform sample of 10,000" in suite.find("system-out").text
    assert result.to_dict()["notes"] == result.notes
