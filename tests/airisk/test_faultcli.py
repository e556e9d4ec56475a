"""`airisk proxy` and `airisk fault ...` end to end: a proxy process in front of an emulator process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from tests.airisk.test_cli import _free_port, emulator_url, run  # noqa: F401  (emulator_url: a fixture)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "airisk.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def _wait_healthy(url: str, proc: subprocess.Popen, headers: dict | None = None) -> None:
    deadline = time.monotonic() + 60  # a cold interpreter on a loaded machine takes seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_airisk/health", timeout=0.5, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            if proc.poll() is not None:
                pytest.fail(f"proxy exited: {proc.stderr.read().decode()}")
            time.sleep(0.05)
    pytest.fail("proxy did not start within 60 s")


@pytest.fixture
def proxy_at(emulator_url, tmp_path):  # noqa: F811
    port = _free_port()
    proc = _start("proxy", "--port", str(port), "--emulator", emulator_url, "--store",
                  env={"AIRISK_HOME": str(tmp_path), "AIRISK_DATABASE_URL": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, tmp_path / "airisk.db"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0  # SIGTERM: a clean stop, the log flushed
        proc.stdout.close()
        proc.stderr.close()


def test_fault_add_list_clear_against_a_running_proxy(proxy_at):
    url, db = proxy_at
    env = {"AIRISK_PROXY_URL": url}
    added = run("fault", "add", "openai", "overloaded", "--probability", "1", "--for", "60s", env=env)
    assert added.exit_code == 0 and "overloaded on openai, lapses in 60s" in added.output
    fault_id = added.output.split()[0]
    listed = run("fault", "list", "--json", env=env)
    (fault,) = json.loads(listed.output)
    assert (fault["id"], fault["scope"], fault["probability"]) == (fault_id, {"route": "openai"}, 1.0)
    assert 55 < fault["expires_at"] - time.time() <= 60

    broken = httpx.post(f"{url}/openai/chat/completions", json=CHAT, headers={"x-airisk-feature": "description"})
    assert broken.status_code == 503 and broken.json()["error"]["type"] == "server_error"
    assert run("fault", "clear", env=env).output.strip() == "removed 1 fault(s)"
    healed = httpx.post(f"{url}/openai/chat/completions", json=CHAT, headers={"x-airisk-feature": "description"})
    assert healed.status_code == 200
    assert "no faults in force" in run("fault", "list", env=env).output

    log = [json.loads(line) for line in run("fault", "log", "--limit", "2", env=env).output.splitlines()]
    assert [(e["feature"], e["status"], e["faults"]) for e in log] == [("description", 503, ["overloaded"]),
                                                                      ("description", 200, [])]
    rows, deadline = [], time.monotonic() + 20  # --store: written within about a second on an idle machine
    while len(rows) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        with contextlib.suppress(sqlite3.OperationalError), contextlib.closing(sqlite3.connect(db)) as conn:
            rows = conn.execute("SELECT feature, route, status FROM proxy_request ORDER BY id").fetchall()
    assert rows == [("description", "openai", 503), ("description", "openai", 200)]


def test_fault_errors_are_one_line_and_exit_2(proxy_at):
    url, _ = proxy_at
    env = {"AIRISK_PROXY_URL": url}
    bad = run("fault", "add", "opneai", "overloaded", env=env)
    assert bad.exit_code == 2 and "fault.route: unknown route 'opneai'" in bad.output
    assert run("fault", "add", "openai", "hang", "--param", "nope", env=env).exit_code == 2
    assert "--for:" in run("fault", "add", "openai", "hang", "--for", "soon", env=env).output
    assert "no such fault" in run("fault", "rm", "f404", env=env).output
    gone = run("fault", "list", env={"AIRISK_PROXY_URL": f"http://127.0.0.1:{_free_port()}"})
    assert gone.exit_code == 2 and "cannot reach the fault proxy" in gone.output


def test_fault_param_and_wildcard_route(proxy_at):
    url, _ = proxy_at
    env = {"AIRISK_PROXY_URL": url}
    assert run("fault", "add", "*", "rate_limited", "--param", "retry_after=7", "--feature", "chat",
               env=env).exit_code == 0
    limited = httpx.post(f"{url}/anthropic/v1/messages", headers={"x-airisk-feature": "chat"},
                         json={"model": "claude-haiku-4-5", "max_tokens": 8, "messages": CHAT["messages"]})
    other = httpx.post(f"{url}/openai/chat/completions", json=CHAT)
    assert (limited.status_code, limited.headers["retry-after"], other.status_code) == (429, "7", 200)


def test_fault_renew_extends_the_lease_within_a_day(proxy_at):
    url, _ = proxy_at
    env = {"AIRISK_PROXY_URL": url}
    fault_id = run("fault", "add", "openai", "overloaded", "--for", "60s", env=env).output.split()[0]
    assert run("fault", "renew", fault_id, "--for", "2h", env=env).output.strip() == f"{fault_id}  lapses in 2h"
    (fault,) = json.loads(run("fault", "list", "--json", env=env).output)
    assert 7100 < fault["expires_at"] - time.time() <= 7200
    too_long = run("fault", "renew", fault_id, "--for", "48h", env=env)
    assert too_long.exit_code == 2 and "for_s: must be a positive number of seconds, at most 86400" in too_long.output
    never = run("fault", "add", "anthropic", "auth", "--for", "never", env=env)
    assert never.exit_code == 0 and "lapses in 24h" in never.output


def test_proxy_refuses_a_public_address_without_allow_external():
    out = run("proxy", "--host", "0.0.0.0")
    assert out.exit_code == 2 and "not a loopback address" in out.output and "--allow-external" in out.output


def test_proxy_rejects_a_bad_route():
    out = run("proxy", "--route", "mine=ftp://x")
    assert out.exit_code == 2 and "--route 'mine=ftp://x'" in out.output


# -- who may set faults -----------------------------------------------------------------------------

def test_fault_sends_the_control_token_to_a_proxy_that_needs_it(tmp_path):
    port = _free_port()
    proc = _start("proxy", "--port", str(port), "--allow-external", env={"AIRISK_CONTROL_TOKEN": "tok-123"})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, headers={"authorization": "Bearer tok-123"})
        env = {"AIRISK_PROXY_URL": url, "AIRISK_CONTROL_TOKEN": "tok-123"}
        assert run("fault", "add", "openai", "overloaded", "--for", "60s", env=env).exit_code == 0
        assert len(json.loads(run("fault", "list", "--json", env=env).output)) == 1
        refused = run("fault", "clear", env={"AIRISK_PROXY_URL": url, "AIRISK_CONTROL_TOKEN": None})
        assert refused.exit_code == 2 and "Authorization: this control API needs" in refused.output
        assert "tok-123" not in refused.output
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        proc.stdout.close()
        proc.stderr.close()


def test_proxy_allow_external_without_a_token_is_refused_in_one_line():
    with socket.socket() as taken:  # were it not refused, it would fail at once on this port, not serve
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        out = run("proxy", "--host", "127.0.0.1", "--port", str(taken.getsockname()[1]), "--allow-external",
                  env={"AIRISK_CONTROL_TOKEN": None})
    assert out.exit_code == 2
    assert out.output.strip().count("\n") == 0 and "--allow-external: set AIRISK_CONTROL_TOKEN" in out.output


def test_emulate_allow_external_without_a_token_is_refused(monkeypatch, capsys):
    from airisk import runtime

    monkeypatch.delenv("AIRISK_CONTROL_TOKEN", raising=False)
    with pytest.raises(SystemExit) as stopped:
        runtime.run(runtime.emulate_forever(host="127.0.0.1", port=_free_port(), seed=None, ttft_ms=None,
                                            token_gap_ms=None, timeline=None, allow_external=True))
    assert stopped.value.code == 2 and "AIRISK_CONTROL_TOKEN" in capsys.readouterr().err


# -- stopping during a hang -------------------------------------------------------------------------

def _held_by_a_hang(url: str) -> socket.socket:
    """A client whose chat request the proxy holds with a hang fault (seen in the proxy's log)."""
    assert httpx.post(f"{url}/_airisk/faults", json={"type": "hang", "route": "openai"}).status_code == 201
    body = json.dumps(CHAT).encode()
    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=60)
    sock.sendall(b"POST /openai/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                 b"content-length: %d\r\n\r\n%s" % (len(body), body))
    deadline = time.monotonic() + 30
    while not any(e["faults"] == ["hang"] for e in httpx.get(f"{url}/_airisk/log").json()):
        assert time.monotonic() < deadline, "the hang fault never held the request"
        time.sleep(0.05)
    return sock


def _proxy_logging_to(tmp_path, *args: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    stderr = open(tmp_path / "proxy.err", "wb")  # noqa: SIM115  (the child writes it; closed at exit)
    proc = subprocess.Popen([sys.executable, "-m", "airisk.cli", "proxy", "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=stderr)
    stderr.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/_airisk/health", timeout=0.5).status_code == 200:
                return proc, url
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"proxy did not start: {(tmp_path / 'proxy.err').read_text()}")
        time.sleep(0.05)


def test_ctrl_c_during_a_hang_stops_within_the_grace(tmp_path):
    proc, url = _proxy_logging_to(tmp_path)  # the default grace, 3 s; the hang would hold 300 s
    held = _held_by_a_hang(url)
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, (tmp_path / "proxy.err").read_text()  # before: waited out the hang
        with contextlib.suppress(ConnectionResetError):
            assert held.recv(100) == b""  # the held client's connection ends, with no answer
    finally:
        held.close()
        if proc.poll() is None:
            proc.kill()
    assert "stopping, waiting up to 3 s for requests in flight" in (tmp_path / "proxy.err").read_text()


def test_a_second_ctrl_c_quits_at_once(tmp_path):
    proc, url = _proxy_logging_to(tmp_path, "--grace", "600")  # a stop that would wait ten minutes
    held = _held_by_a_hang(url)
    try:
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while "stopping" not in (tmp_path / "proxy.err").read_text():
            assert time.monotonic() < deadline and proc.poll() is None, "the first Ctrl-C was not taken"
            time.sleep(0.05)
        assert proc.poll() is None  # still waiting for the held request
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 128 + signal.SIGINT
    finally:
        held.close()
        if proc.poll() is None:
            proc.kill()
    assert "second signal, exiting now" in (tmp_path / "proxy.err").read_text()


def test_proxy_limits_come_from_the_command_line(tmp_path):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does) and never answers
    port = silent.getsockname()[1]
    proc, url = _proxy_logging_to(tmp_path, "--max-body", "2048", "--head-timeout", "1",
                                  "--route", f"silent:openai=http://127.0.0.1:{port}/v1")
    try:
        big = httpx.post(f"{url}/silent/chat/completions", content=b"{" + b" " * 4096 + b"}",
                         headers={"content-type": "application/json"}, timeout=30)
        assert big.status_code == 413
        slow = httpx.post(f"{url}/silent/chat/completions", json=CHAT, timeout=30)
        assert slow.status_code == 504 and "error" in slow.json()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        silent.close()
