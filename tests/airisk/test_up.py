"""`airisk up` as a user runs it: it never goes quiet, and its children get only what they need.

The supervision tests start the real command (`python -m airisk.cli up`) with a config of their own,
free ports and a temporary AIRISK_HOME; their target is a closed loopback port, so nothing leaves
the machine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airisk import up
from chaos.drill.runner import Stack, free_port
from monitor.config import LocalModelConfig
from tests.conftest import need, until

FAKE_KEY = "sk-airisk-test-not-a-real-key"


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _descendants(pid: int) -> dict[int, str]:
    """The live descendants of ``pid`` (children, their children, ...): their command lines."""
    parents, cmdlines = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdlines[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = {}, {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier and child not in found}
        found.update({child: cmdlines.get(child, "") for child in frontier})
    return found


def _the(pid: int, module: str) -> int:
    """The one descendant of ``pid`` running ``python -m module`` itself (not a keeper that started it)."""
    found = [p for p, cmd in _descendants(pid).items() if f"-m {module}" in cmd and "_keeper" not in cmd]
    assert len(found) == 1, _descendants(pid)
    return found[0]


def _running(part: str) -> list[int]:
    """Processes whose command line holds ``part``."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if part in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                out.append(int(cmdline.parent.name))
        except OSError:
            continue
    return out


def _wait(done, within: float, what: str) -> None:
    asyncio.run(until(done, within, what))


class Up:
    """A real ``airisk up --config FILE`` in its own process, its output in a file."""

    def __init__(self, tmp_path: Path, config: str, **env: str) -> None:
        self.port = free_port()
        self.log_path = tmp_path / "up.log"
        (tmp_path / "airisk.yaml").write_text(config)
        self._log = self.log_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airisk.cli", "up", "--config", str(tmp_path / "airisk.yaml"), "--port",
             str(self.port)], stdout=self._log, stderr=subprocess.STDOUT, cwd=tmp_path,
            env={**os.environ, "AIRISK_HOME": str(tmp_path / "home"), "AIRISK_DATABASE_URL": "", **env})

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_up(self) -> None:
        _wait(lambda: "Ctrl-C stops everything" in self.output or self.proc.poll() is not None, 180,
              "airisk up's banner")
        assert self.proc.poll() is None, self.output

    def wait_exit(self, within: float = 60) -> int:
        _wait(lambda: self.proc.poll() is not None, within, f"airisk up to exit; it said: {self.output[-1500:]}")
        self.took = time.monotonic() - self.started
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def closed_port() -> int:
    return free_port()  # nothing listens there: connections are refused at once


@pytest.fixture
def one_target(closed_port) -> str:
    return (f"targets:\n  - name: primary\n    provider: openai\n    base_url: http://127.0.0.1:{closed_port}/v1\n"
            "    key_env: AIRISK_TEST_NO_KEY\n")


@pytest.fixture
def run_up(tmp_path):
    started: list[Up] = []

    def start(config: str, **env: str) -> Up:
        started.append(Up(tmp_path, config, **env))
        return started[-1]

    yield start
    for u in started:
        u.close()


def test_up_exits_with_the_cause_when_the_database_is_unreachable(run_up, one_target, closed_port):
    url = f"postgresql+psycopg://airisk:hunter2@127.0.0.1:{closed_port}/airisk"
    u = run_up(one_target, AIRISK_DATABASE_URL=url)
    assert u.wait_exit() == 1
    out = u.output
    assert "airisk up: the monitor failed: OperationalError" in out and "refused" in out, out
    assert "everything it started is stopped" in out
    assert "hunter2" not in out  # the database password is not in what it says
    assert _running(f"--server.port {u.port}") == []  # its dashboard was stopped too


def test_up_exits_naming_its_dashboard_when_the_dashboard_dies(run_up, one_target):
    u = run_up(one_target, OPENAI_API_KEY=FAKE_KEY)
    u.wait_up()
    dashboard = _the(u.proc.pid, "streamlit run")
    env = _environ(dashboard)
    assert "OPENAI_API_KEY" not in env and env["AIRISK_CONFIG"].endswith("airisk.yaml")  # only what it needs
    assert env["AIRISK_HOME"].endswith("home")
    os.kill(dashboard, signal.SIGKILL)
    assert u.wait_exit() == 1
    assert "airisk up: the dashboard exited with status " in u.output, u.output


def test_up_serves_the_local_model_the_config_describes(run_up, tmp_path, one_target):
    need(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python is not installed ([local])")
    from monitor.localmodel import default_model_path

    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "house.gguf"  # relative in the config: to the config file's folder
    model.symlink_to(default_model_path())
    port = free_port()
    u = run_up(one_target + f"local_model:\n  model: models/house.gguf\n  port: {port}\n  threads: 1\n"
                            "  alias: house-model\n")
    u.wait_up()
    assert "house-model by llama.cpp" in u.output and "with 1 threads" in u.output, u.output
    served = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()
    assert [m["id"] for m in served["data"]] == ["house-model"]
    server = _the(u.proc.pid, "llama_cpp.server")
    cmd = _descendants(u.proc.pid)[server].split()
    assert cmd[cmd.index("--n_threads") + 1] == "1" and cmd[cmd.index("--model") + 1] == str(model)
    os.kill(server, signal.SIGKILL)
    assert u.wait_exit() == 1
    assert "airisk up: the local model exited" in u.output, u.output


def test_the_local_model_section_reaches_the_server(monkeypatch, tmp_path):
    """model (relative to the config file), threads and alias reach the server `up` starts (nothing is run)."""
    from monitor.localmodel import LocalModelServer

    monkeypatch.setattr(LocalModelServer, "start", lambda self: None)
    monkeypatch.setattr(LocalModelServer, "wait_ready", lambda self: 0.1)
    section = LocalModelConfig(model="models/tiny.gguf", threads=3, alias="tiny", port=9)
    url, note, server = up._local_model(Stack(logs=tmp_path), up.Ports(local=9), fallback=False, section=section,
                                        base=tmp_path)
    assert (server.model, server.threads, server.alias, server.port) == (tmp_path / "models" / "tiny.gguf", 3,
                                                                         "tiny", 9)
    assert url == "http://127.0.0.1:9/v1" and "tiny by llama.cpp" in note and "with 3 threads" in note
    _, _, server = up._local_model(Stack(logs=tmp_path), up.Ports(local=9), fallback=False,
                                   section=LocalModelConfig(), base=tmp_path)
    assert server.model is None and server.alias == "gemma-3-270m"  # unset: the bundled model, as before


def test_demo_children_get_no_provider_key(tmp_path, monkeypatch):
    """The emulator, the proxy and the storefront of the demo: a provider key in `up`'s environment
    reaches none of them (the demo means no key to go anywhere)."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    ports = up.Ports(emulator=free_port(), proxy=free_port(), storefront=free_port(), local=free_port())
    stack = Stack(logs=tmp_path)
    try:
        up._start_demo(stack, ports, tmp_path, f"http://127.0.0.1:{ports.emulator}/local/v1", dict(os.environ))
        names = {name for name, _ in stack.procs}
        assert names == {"emulator", "proxy", "storefront"}
        for name, proc in stack.procs:
            pid = getattr(proc, "target_pid", proc.pid)  # the command itself, not a keeper before it
            env = _environ(pid)
            assert FAKE_KEY not in env.values(), (name, sorted(env))
            assert "PATH" in env
        proxy = dict(stack.procs)["proxy"]
        proxy_env = _environ(getattr(proxy, "target_pid", proxy.pid))
        assert proxy_env["AIRISK_HOME"] == str(tmp_path) and proxy_env["AIRISK_DATABASE_URL"] == ""
    finally:
        stack.stop()


@given(model=st.text(max_size=30))
def test_the_model_path_is_the_config_files_or_none(model):
    base = Path("/srv/airisk")
    path = up.model_path(LocalModelConfig(model=model or None), base)
    if not model:
        assert path is None
    else:
        given_path = Path(os.path.expanduser(model))
        assert path == (given_path if given_path.is_absolute() else base / given_path)


@given(password=st.text(st.characters(blacklist_characters="@:/"), min_size=1, max_size=12))
def test_the_database_password_is_redacted_from_what_up_says(password):
    from sqlalchemy.engine import make_url

    class Engine:
        url = make_url("postgresql+psycopg://airisk@db:5432/airisk").set(password=password)

    redact = up._redactor(Engine())
    out = redact(f"could not connect to postgresql://airisk:{password}@db/airisk")
    assert f":{password}@" not in out and ":***@db/airisk" in out
    if len(password) >= 6 and "*" not in password:
        assert password not in redact(f"password {password} refused")
    elif len(password) < 6:  # a short one is only hidden in a URL: "b" must not turn "traceback" into "trace***ack"
        assert redact("(traceback: /tmp/airisk-up-x/monitor.log)") == "(traceback: /tmp/airisk-up-x/monitor.log)"
