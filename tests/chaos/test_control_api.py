"""One control API on both servers (`chaos.control.api`), the `ControlClient`, and `python -m chaos.run`."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.control.api import ControlAPI, Reply, Request, TooLarge
from chaos.control.client import ControlClient, NotJSON, Refused, Unreachable
from chaos.controlguard import LOOPBACK, ControlGuard
from chaos.faults import FaultSet
from chaos.requestlog import RequestLog
from chaos.run import main
from probes.catalog import CATALOG
from tests.chaos.control_fuzz import ControlServers

SIDES = ("emulator", "proxy")
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def servers():
    with ControlServers() as running:
        yield running


@pytest.fixture
def clients(servers):
    made = {side: ControlClient(servers.urls[side]) for side in SIDES}
    for client in made.values():
        client.reset()
    yield made
    for client in made.values():
        client.close()


# -- the same verbs, the same meanings ------------------------------------------------------------

@pytest.mark.parametrize("side", SIDES)
def test_the_common_verbs_mean_the_same_on_both_sides(clients, side):
    client = clients[side]
    added = client.add({"type": "overloaded", "route": "openai", "for_s": 60})
    assert [f["id"] for f in client.faults()] == [added["id"]]
    renewed = client.renew(added["id"], 600)
    assert renewed["expires_at"] >= added["expires_at"] + 500
    assert client.remove(added["id"]) == {"removed": added["id"]}
    for kind in ("overloaded", "hang"):
        client.add({"type": kind})
    assert client.clear() == 2
    client.add({"type": "auth"})
    assert client.reset() == {"reset": True, "removed": 1} and client.faults() == []
    health = client.health()
    assert health["ok"] is True and set(health["routes"]) >= set(CATALOG) and health["faults"] == 0
    assert isinstance(health["logged"], int)
    assert {t["type"] for t in client.fault_types()} >= {"hang", "overloaded"}


@pytest.mark.parametrize("side", SIDES)
def test_errors_are_json_and_the_same_on_both_sides(clients, side):
    client = clients[side]
    http = client.http
    nowhere = http.get("/nothing")
    assert nowhere.status_code == 404
    assert nowhere.json() == {"error": "GET /_airisk/nothing: no such control endpoint"}
    wrong = http.put("/reset")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json() == {"error": "PUT /_airisk/reset: not allowed here (allowed: POST)"}
    added = client.add({"type": "auth", "route": "openai"})
    empty = http.post(f"/faults/{added['id']}/renew")
    assert empty.status_code == 400 and empty.json()["error"].startswith("for_s: must be a positive number")
    with pytest.raises(Refused) as missing:
        client.renew("f404", 5)
    assert missing.value.status == 404 and missing.value.message.startswith("fault 'f404': no such fault")
    with pytest.raises(Refused) as bad:
        client.add({"type": "meltdown"})
    assert bad.value.status == 400 and bad.value.message.startswith("fault.type: unknown fault 'meltdown'")
    bad_limit = http.get("/log", params={"limit": "ten"})
    assert bad_limit.status_code == 400 and bad_limit.json() == {"error": "limit: must be a whole number, got 'ten'"}


@pytest.mark.parametrize("side", SIDES)
def test_the_log_has_the_same_shape_on_both_sides(servers, clients, side):
    client = clients[side]
    start = client.log(limit=1)
    position = start[-1]["id"] if start else 0
    with httpx.Client(timeout=10) as http:
        for _ in range(3):
            assert http.post(f"{servers.urls[side]}/openai/v1/chat/completions" if side == "emulator"
                             else f"{servers.urls[side]}/openai/chat/completions", json=CHAT).status_code == 200
    newer = client.log(after=position)
    assert [e["id"] for e in newer] == [position + 1, position + 2, position + 3]
    assert all(e["route"] == "openai" and e["status"] == 200 for e in newer)
    assert client.log(after=position, limit=1) == newer[-1:]
    assert client.log()[-3:] == newer  # the default: every entry kept


def test_the_client_names_what_went_wrong():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nobody listens once this closes
    with ControlClient(f"http://127.0.0.1:{closed}", timeout=2) as client, pytest.raises(Unreachable):
        client.health()
    html = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>hello</html>"))
    with ControlClient("http://example.test", transport=html) as client, pytest.raises(NotJSON) as other:
        client.faults()
    assert other.value.status == 200


def test_the_client_sends_the_token_only_when_set():
    seen = []

    def note(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.url.query, request.headers.get("authorization")))
        return httpx.Response(200, json=[])

    with ControlClient("http://x.test/", transport=httpx.MockTransport(note), environ={}) as client:
        client.log(after=4, limit=2)
    with ControlClient("http://x.test", transport=httpx.MockTransport(note),
                       environ={"AIRISK_CONTROL_TOKEN": "t0k"}) as client:
        client.faults()
    assert seen == [("GET", "/_airisk/log", b"after=4&limit=2", None), ("GET", "/_airisk/faults", b"", "Bearer t0k")]


# -- the framework-free API, fuzzed -----------------------------------------------------------------

def _api(guard: ControlGuard = LOOPBACK) -> ControlAPI:
    return ControlAPI(faults=FaultSet(), log=RequestLog(size=5), routes=lambda: CATALOG,
                      health=lambda: {"openai": "/openai/v1"}, guard=lambda: guard)


segments = st.sampled_from(["health", "faults", "renew", "log", "reset", "fault-types", "f1", "", "x/y", "%2F", ".."])
paths = st.lists(segments, max_size=4).map("/".join)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "get"])
queries = st.dictionaries(st.sampled_from(["after", "limit", "x"]), st.text(max_size=25), max_size=3)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)
bodies = st.binary(max_size=60) | json_values.map(lambda v: json.dumps(v).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=methods, path=paths, query=queries, body=bodies)
def test_any_request_gets_a_json_answer_and_never_a_server_error(method, path, query, body):
    reply = _api().dispatch(Request(method, path, query, body))
    assert isinstance(reply, Reply) and reply.status in (200, 201, 202, 400, 404, 405)
    json.dumps(reply.body)  # always serialisable
    if reply.status >= 400:
        assert set(reply.body) == {"error"} and isinstance(reply.body["error"], str)
    if reply.status == 405:
        assert reply.headers["Allow"]


header_values = st.none() | st.text(max_size=40) | st.sampled_from(
    ["127.0.0.1:8480", "localhost", "[::1]:1", "evil.example", "application/json", "text/plain", "null", "0", "12",
     "\u00b2", "\u0663\u0663"])  # digits that are not ASCII: int() takes some, HTTP does not


@settings(max_examples=300, deadline=None)
@given(host=header_values, origin=header_values, ctype=header_values, auth=header_values, length=header_values,
       token=st.none() | st.just("s3cret"))
def test_the_guard_runs_before_any_body_is_read(host, origin, ctype, auth, length, token):
    guard = ControlGuard(token=token)
    headers = {k: v for k, v in {"host": host, "origin": origin, "content-type": ctype, "authorization": auth,
                                 "content-length": length}.items() if v is not None}
    read = []

    async def read_body(limit: int) -> bytes:
        read.append(limit)
        return b"{}"

    reply = asyncio.run(_api(guard).handle("GET", "/_airisk/health", {}, headers, read_body))
    has_body = length is not None and length.strip() not in ("", "0")
    refusal = guard.check(host=host, origin=origin, content_type=ctype, authorization=auth, has_body=has_body)
    if refusal is not None:
        assert reply is not None and (reply.status, reply.body) == (refusal.status, {"error": refusal.message})
        assert read == []
    else:
        assert reply is not None and reply.status in (200, 413)


def test_a_body_past_the_limit_is_413_and_a_client_gone_gets_no_answer():
    api = _api()
    headers = {"host": "127.0.0.1", "content-type": "application/json", "transfer-encoding": "chunked"}

    async def too_big(limit: int) -> bytes:
        raise TooLarge(limit)

    async def gone(limit: int) -> None:
        return None

    reply = asyncio.run(api.handle("POST", "/_airisk/faults", {}, headers, too_big))
    assert reply is not None and reply.status == 413 and reply.body["error"].startswith("body: larger than")
    assert asyncio.run(api.handle("POST", "/_airisk/faults", {}, headers, gone)) is None


# -- python -m chaos.run ----------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "message"), [
    (["proxy", "--log-size", "0"], "airisk: --log-size: must be at least 1"),
    (["proxy", "--host", "8.8.8.8"], "airisk: --host '8.8.8.8': 8.8.8.8 is not a loopback address"),
    (["emulate", "--host", "8.8.8.8"], "airisk: --host 8.8.8.8: not a loopback address; add --allow-external"),
    (["emulate", "--port", "many"], "airisk: argument --port: invalid int value: 'many'"),
    (["nothing"], "airisk: argument side: invalid choice: 'nothing'"),
])
def test_run_refuses_a_bad_option_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and err.startswith(message) and "\n" not in err


def test_python_m_chaos_run_serves_the_emulator_until_ctrl_c(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = tmp_path / "emulator.err"
    with err.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "chaos.run", "emulate", "--port", str(port), "--ttft-ms", "1"],
                                stdout=subprocess.DEVNULL, stderr=out)
    try:
        deadline = time.monotonic() + 60
        with ControlClient(f"http://127.0.0.1:{port}", timeout=1) as client:
            while True:
                try:
                    assert client.health()["ok"] is True
                    break
                except Unreachable:
                    assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
                    time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "airisk emulator: stopping" in err.read_text()


def test_the_proxys_control_side_and_the_client_load_no_aiohttp_nor_the_emulator():
    code = ("import sys, chaos.proxycontrol, chaos.control.client, chaos.run; "
            "print(sorted(m for m in ('aiohttp', 'chaos.emulator', 'airisk') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_the_emulators_log_still_reads_as_the_deque_it_was(servers):
    log = servers.emu.log  # a RequestLog once the control API is mounted
    assert isinstance(log, RequestLog) and log.maxlen == 2000
    log.clear()
    log.append({"route": "openai"})
    log.append({"route": "cohere"})
    assert len(log) == 2 and log[-1]["route"] == "cohere" and [e["route"] for e in log] == ["openai", "cohere"]
    assert log[0]["id"] + 1 == log[-1]["id"]
    log.clear()
    assert len(log) == 0 and list(log) == []


@pytest.mark.parametrize("length", ["\u00b2", "\u0663\u0663", " 12 "])
def test_a_content_length_of_other_digits_is_no_crash(length):
    """``str.isdigit`` takes digits ``int()`` refuses ('²') or reads (Arabic-Indic): neither is HTTP's."""
    headers = {"host": "127.0.0.1:8480", "content-type": "application/json", "content-length": length}

    async def read_body(limit: int) -> bytes:
        return b"{}"

    reply = asyncio.run(_api().handle("GET", "/_airisk/health", {}, headers, read_body))
    assert reply is not None and reply.status == 200


@pytest.mark.parametrize(("option", "said"), [
    (["--max-body", "10"], "--max-body: must be from 1024 to 1073741824, got 10"),
    (["--head-timeout", "0"], "--head-timeout: must be from 1 to 86400, got 0.0"),
    (["--grace", "5000"], "--grace: must be from 0 to 3600, got 5000.0"),
    (["--log-size", "0"], "--log-size: must be at least 1, got 0"),
])
def test_python_m_chaos_run_refuses_what_airisk_proxy_refuses(option, said, capsys):
    """The same ranges as `airisk proxy`'s options (airisk/faultcli.py), in one line, before anything starts."""
    with pytest.raises(SystemExit) as stopped:
        main(["proxy", "--port", "0", *option])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(said)
