"""Drill files, and the arithmetic from records to verdicts (no processes here; see test_drill_e2e.py)."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from chaos.drill.output import failures, write_junit
from chaos.drill.report import PhaseRun, analyse, pct
from chaos.drill.runner import DrillError, Guard, Proxy, Records, check_targets, control_headers
from chaos.drill.spec import ConfigError, DrillSpec, load_drill
from monitor.config.loader import parse_model

GOOD = """
name: t
product: {base_url: "http://127.0.0.1:8600"}
features:
  desc: {request: {path: /api/description, json: {product: mug}}, expect: {field: text}, outcome: survives}
  tags:
    request: {path: /api/tags}
    degraded_when: {field: degraded}
    outcome: degrades
  chat: {request: {path: /api/chat}, outcome: may_fail}
phases:
  - {name: base, duration: 10s}
  - {name: down, duration: 10s, faults: [{route: openai, type: overloaded}]}
  - {name: after, duration: 10s}
"""


def spec(text: str = GOOD) -> DrillSpec:
    return parse_model(text, DrillSpec, source="drill.yaml")


def test_a_good_drill_file():
    s = spec()
    assert s.duration == 30 and s.phases[1].faults[0].fault_dict() == {"type": "overloaded", "route": "openai",
                                                                     "params": {}, "probability": 1.0}
    assert s.features["desc"].request.json_body == {"product": "mug"} and s.load.users == 10
    assert s.guards.for_ == 5 and s.lease == 5


@pytest.mark.parametrize(("change", "problem"), [
    (("type: overloaded", "type: meltdown"), "drill.yaml:13: phases[1].faults[0]: type: unknown fault 'meltdown'"),
    (("duration: 10s}", "duration: soon}"), "drill.yaml:12: phases[0].duration: \"soon\" is not a duration"),
    (("outcome: degrades", "outcome: maybe"), "drill.yaml:9: features.tags.outcome: Input should be 'survives'"),
    (("path: /api/tags", "path: api/tags"), "drill.yaml:7: features.tags.request: path must start with '/'"),
    (("{route: openai, type: overloaded}", "{type: hang, params: {secs: 1}}"), "params.secs: hang takes no such"),
    (("  - {name: after, duration: 10s}", "  - {name: down, duration: 10s}"), "each phase needs its own name"),
    (("faults: [{route: openai, type: overloaded}]", "faults: []"), "no phase has faults"),
    (("name: t", "nmae: t"), "unknown field 'nmae' (did you mean 'name'?)"),
])
def test_every_problem_is_one_line_naming_the_field(change, problem):
    with pytest.raises(ConfigError) as caught:
        spec(GOOD.replace(*change))
    assert any(problem in str(p) for p in caught.value.problems), str(caught.value)


def test_unreadable_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the file"):
        load_drill(tmp_path / "nope.yaml")


@pytest.mark.parametrize("url", ["http://10.0.0.5:8600", "https://shop.example.com"])
def test_only_loopback_or_allowed_hosts_are_drilled(url):
    s = spec(GOOD.replace("http://127.0.0.1:8600", url))
    with pytest.raises(DrillError, match="not loopback and not in allow_hosts"):
        check_targets(s)
    host = url.split("//")[1].split(":")[0]
    check_targets(spec(GOOD.replace("http://127.0.0.1:8600", url) + f"allow_hosts: [{host}]\n"))


def _rec(t, f, ok=True, deg=False, ms=10.0, k=None, b="openai"):
    return {"t": t, "f": f, "ms": ms, "ok": ok, "deg": deg, "s": 200 if ok or deg else 503, "k": k, "b": b}


PHASES = [PhaseRun("base", 0, 10), PhaseRun("down", 10, 20, [{"route": "openai", "type": "overloaded"}]),
          PhaseRun("after", 20, 30)]


def test_verdicts_expectations_and_recovery():
    records = []
    for i in range(100):
        t = i * 0.3
        down = 10 <= t < 20
        records.append(_rec(t, "desc", ok=not down, k="http_503" if down else None, ms=5 if down else 50))
        records.append(_rec(t, "tags", ok=not down, deg=down, b="heuristic" if down else "openai"))
        records.append(_rec(t, "chat", ok=True, b="local" if down else "anthropic"))
    # desc recovers 1.3 s after the fault ends: its first request from 21.2 s on is at 21.3 s, and
    # from there three full answers come in a row (the lone success at 20.5 s is not a recovery)
    records = [r for r in records if not (r["f"] == "desc" and 20 <= r["t"] < 21.2)]
    records += [_rec(20.1, "desc", ok=False, k="timeout"), _rec(20.5, "desc", ok=True), _rec(20.8, "desc", ok=False)]
    entries = [{"at": 15, "feature": "chat", "route": "local", "status": 200},
               {"at": 15, "feature": "chat", "route": "anthropic", "status": 200},
               {"at": 15.1, "feature": "chat", "route": "local", "status": 200},
               {"at": 15, "feature": "tags", "route": "openai", "status": 503},
               {"at": 5, "feature": "chat", "route": "anthropic", "status": 200}]
    result = analyse(spec(), records, PHASES, entries, started_at=0, ended_at=30)
    by = {f.feature: f for f in result.features}
    assert (by["desc"].verdict, by["desc"].meets) == ("broken", False)
    assert by["desc"].during_faults.errors == {"http_503": 33} and by["desc"].during_faults.p50_ms == 5
    assert by["desc"].recovery_s == pytest.approx(1.3, abs=0.01)
    assert (by["tags"].verdict, by["tags"].meets, by["tags"].recovery_s) == ("degraded", True, 0.1)
    assert by["tags"].during_faults.backends == {"heuristic": 33} and by["tags"].answered_by == []
    assert (by["chat"].verdict, by["chat"].meets, by["chat"].answered_by) == ("resilient", True, ["local", "anthropic"])
    assert by["chat"].phases["base"].requests == 34 and by["chat"].phases["down"].backends == {"local": 33}
    assert not result.passed
    assert failures(result) == ["desc: expected to survives, was broken (full answers 0%, any answer 0% while the "
                                "faults were in force)"]


def test_a_request_under_way_when_the_faults_came_or_went_speaks_for_neither_phase():
    records = [_rec(9.999, "tags", ms=2.0), _rec(10.0, "tags", deg=True, ok=False, b="heuristic"),
               _rec(19.995, "tags", ms=10.0), _rec(20.0, "tags")]  # the first and third straddle an edge
    result = analyse(spec(), records, PHASES, [], started_at=0, ended_at=30)
    tags = next(f for f in result.features if f.feature == "tags")
    assert tags.during_faults.backends == {"heuristic": 1} and tags.verdict == "degraded"
    assert tags.phases["base"].requests == 0 and tags.phases["after"].requests == 1


def test_no_traffic_during_the_faults_only_meets_may_fail():
    result = analyse(spec(), [_rec(1, "desc"), _rec(1, "chat")], PHASES, [], started_at=0, ended_at=30)
    assert [(f.feature, f.verdict, f.meets) for f in result.features] == [
        ("desc", None, False), ("tags", None, False), ("chat", None, True)]


def test_junit_has_one_case_per_feature(tmp_path):
    records = [_rec(t / 10, f, ok=f != "desc" or not 10 <= t / 10 < 20) for t in range(300) for f in ("desc", "chat")]
    result = analyse(spec(), records, PHASES, [], started_at=0, ended_at=30)
    write_junit(result, tmp_path / "j.xml")
    suite = ET.parse(tmp_path / "j.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")  # desc broken, tags without traffic
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["desc"].find("failure").get("type") == "worse_than_expected"
    assert cases["chat"].find("failure") is None
    result.aborted = "success rate 0% below the floor 50% for 2s"
    write_junit(result, tmp_path / "a.xml")
    aborted = ET.parse(tmp_path / "a.xml").getroot()
    assert aborted.get("failures") == "3"
    assert all(c.find("failure").get("type") == "aborted" for c in aborted.iter("testcase"))


def test_guard_trips_only_after_the_window():
    guard = Guard(floor=0.5, window=2.0)
    good = [_rec(t / 10, "desc") for t in range(10)]
    assert guard.feed(good, now=1.0) is None
    bad = [_rec(1 + t / 10, "desc", ok=False) for t in range(30)]
    assert guard.feed(bad[:10], now=2.0) is None  # 50%: not below
    assert guard.feed(bad[10:20], now=3.0) is None  # below since 3.0
    assert guard.feed(bad[20:], now=4.5) is None
    assert "below the floor 50% for 2s" in guard.feed([], now=5.0)


def test_records_are_read_whole_lines_only(tmp_path):
    path = tmp_path / "records-local-1.jsonl"
    path.write_text('{"t": 1, "f": "a", "ms": 1, "ok": true, "deg": false}\n{"t": 2, "f"')
    records = Records(tmp_path)
    assert [r["t"] for r in records.read_new()] == [1]
    with path.open("a") as f:
        f.write(': "a", "ms": 1, "ok": true, "deg": false}\n')
    assert [r["t"] for r in records.read_new()] == [2] and records.count == 2


def test_pct():
    assert pct([], 50) is None and pct([3, 1, 2], 50) == 2 and pct(list(range(1, 101)), 95) == 95


class _ControlAPI(BaseHTTPRequestHandler):
    """A fault proxy's control API that notes each request's Authorization header."""

    seen: ClassVar[list[tuple[str, str, str | None]]] = []

    def _answer(self, status: int, body: object) -> None:
        type(self).seen.append((self.command, self.path.split("?")[0], self.headers.get("Authorization")))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer(200, [])

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(201 if self.path.endswith("/faults") else 200, {})

    def do_DELETE(self):
        self._answer(200, {})

    def log_message(self, *args):
        pass


@pytest.fixture
def control_api():
    _ControlAPI.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ControlAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _use(url: str) -> None:
    proxy = Proxy(url, "drill-1", 5)
    try:
        proxy.log_position()
        proxy.leases.add(0, "down", [{"type": "overloaded", "route": "openai"}])
        proxy.leases.renew()
        proxy.log_after(0)
        proxy.leases.remove_all()
    finally:
        proxy.close()


def test_the_control_client_sends_the_token_when_one_is_set(control_api, monkeypatch):
    monkeypatch.setenv("AIRISK_CONTROL_TOKEN", "s3cret")
    _use(control_api)
    assert [(m, p) for m, p, _ in _ControlAPI.seen] == [
        ("GET", "/_airisk/log"), ("POST", "/_airisk/faults"), ("POST", "/_airisk/faults/drill-1-p0-0/renew"),
        ("GET", "/_airisk/log"), ("DELETE", "/_airisk/faults/drill-1-p0-0")]
    assert {auth for _, _, auth in _ControlAPI.seen} == {"Bearer s3cret"}
    assert control_headers() == {"Authorization": "Bearer s3cret"}


def test_without_a_token_no_authorization_is_sent(control_api, monkeypatch):
    monkeypatch.delenv("AIRISK_CONTROL_TOKEN", raising=False)
    _use(control_api)
    assert {auth for _, _, auth in _ControlAPI.seen} == {None}
