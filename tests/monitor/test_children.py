"""Child processes: gone with their parent however it dies, stopped by group, and given only the
environment they need. Real processes throughout (a parent, its child, the child's own child)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.children import BASE_ENV, child_env, spawn
from tests.conftest import until

ROOT = Path(__file__).resolve().parents[2]
# A command that starts a grandchild in its own group, says both pids, and sleeps.
FAMILY = ("import json, subprocess, sys, time\n"
          "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
          "print(json.dumps({'child': __import__('os').getpid(), 'grandchild': kid.pid}), flush=True)\n"
          "time.sleep(300)\n")


def start(command: list[str], out: Path, **kwargs):
    with out.open("w") as f:  # the child keeps its own descriptor
        return spawn(command, stdout=f, **kwargs)


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie (a container's init may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def environ_after_exec(pid: int, marker: str, within: float = 10.0) -> dict[str, str]:
    """``pid``'s environment once it runs its own program (its command line holds ``marker``). Read sooner,
    between fork and exec, /proc shows the environment the parent started with (putenv never changes it),
    which is neither what the parent has now nor what the child will get."""
    end = time.monotonic() + within
    while marker.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < end, f"{pid} never ran a program holding {marker!r}"
        time.sleep(0.02)
    return environ_of(pid)


def read_json_line(path: Path) -> dict | None:
    try:
        line = path.read_text().splitlines()[0]
    except (FileNotFoundError, IndexError):
        return None
    return json.loads(line) if line.endswith("}") else None


@pytest.fixture
def linux():
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads /proc to see processes")


async def test_a_parent_killed_with_sigkill_takes_its_children_and_grandchildren(tmp_path, linux):
    # The parent starts the child from a thread that has ended by the time the parent is killed:
    # PR_SET_PDEATHSIG (the old way) would have fired at the thread's end already, and never
    # reached the grandchild.
    out = tmp_path / "family.json"
    parent_code = (
        "import sys, threading, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from monitor.children import spawn\n"
        "kids = []\n"
        f"t = threading.Thread(target=lambda: kids.append(spawn([sys.executable, '-c', {FAMILY!r}],"
        f" stdout=open({str(out)!r}, 'w'))))\n"
        "t.start(); t.join()\n"
        f"open({str(out)!r} + '.keeper', 'w').write(str(kids[0].pid))\n"
        "time.sleep(300)\n")
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", parent_code)
    try:
        await until(lambda: read_json_line(out) is not None and (tmp_path / "family.json.keeper").exists(), 30,
                    "the family to start")
        family = read_json_line(out)
        pids = [int((tmp_path / "family.json.keeper").read_text()), family["child"], family["grandchild"]]
        assert not any(gone(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        await parent.wait()
        await until(lambda: all(gone(pid) for pid in pids), 10, "the child, its keeper and the grandchild to go")
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()


async def test_a_child_outlives_the_thread_that_started_it(tmp_path, linux):
    beats = tmp_path / "beats"
    holder = []
    thread = threading.Thread(target=lambda: holder.append(start(
        [sys.executable, "-c", "import time\nwhile True:\n    print('.', flush=True)\n    time.sleep(0.05)\n"],
        beats)))
    thread.start()
    thread.join()
    child = holder[0]
    try:
        await until(lambda: beats.exists() and beats.stat().st_size > 0, 20, "the first beat")
        after_thread = beats.stat().st_size
        await until(lambda: beats.stat().st_size >= after_thread + 5, 20, "beats after the starting thread ended")
        assert child.poll() is None
    finally:
        child.stop(1)


async def test_stop_ends_the_whole_group_even_a_member_that_ignores_sigterm(tmp_path, linux):
    out = tmp_path / "out"
    stubborn = FAMILY.replace("'import time; time.sleep(300)'",
                              "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'")
    child = start([sys.executable, "-c", stubborn], out)
    await until(lambda: read_json_line(out) is not None, 30, "the family to start")
    family = read_json_line(out)
    assert child.target_pid == family["child"] and os.getpgid(family["grandchild"]) == child.pid
    assert child.stop(grace=1) == -signal.SIGTERM
    await until(lambda: gone(family["child"]) and gone(family["grandchild"]), 10, "the group to go")


def test_the_exit_status_is_the_commands():
    assert spawn([sys.executable, "-c", "raise SystemExit(3)"]).wait(30) == 3
    killed = spawn([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGUSR1)"])
    assert killed.wait(30) == -signal.SIGUSR1
    # SIGKILL takes no handler: the keeper must not trip over resetting one before dying the same way.
    killed = spawn([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert killed.wait(30) == -signal.SIGKILL


def test_a_missing_command_says_so_in_its_output(tmp_path):
    out = tmp_path / "out"
    child = start([str(tmp_path / "no-such-program")], out, stderr=subprocess.STDOUT)
    assert child.wait(30) == 127 and child.target_pid is None
    assert "cannot start" in out.read_text() and "no-such-program" in out.read_text()


async def test_a_signal_reaches_the_command_once(tmp_path):
    # `Stack.interrupt` sends Ctrl-C to a drill under way: a second one would break into its clean-up.
    out = tmp_path / "out"
    code = ("import signal, sys, time\nhits = []\nsignal.signal(signal.SIGINT, lambda *_: hits.append(1))\n"
            "print('ready', flush=True)\ntime.sleep(2)\nprint(len(hits), flush=True)\n")
    child = start([sys.executable, "-c", code], out)
    await until(lambda: "ready" in (out.read_text() if out.exists() else ""), 30, "the child to start")
    child.send_signal(signal.SIGINT)
    assert child.wait(30) == 0 and out.read_text().split() == ["ready", "1"]


def test_a_planted_provider_key_is_not_in_the_childs_environment(monkeypatch, linux, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-in-the-parent")
    monkeypatch.setenv("STOREFRONT_AI_TIMEOUT", "3")
    monkeypatch.setenv("AIRISK_CONTROL_TOKEN", "tok")
    child = spawn([sys.executable, "-c", "import time; time.sleep(60)"], keep=("STOREFRONT_*",), env={"X": "1"})
    try:
        for pid, marker in ((child.pid, "_keeper"), (child.target_pid, "time.sleep(60)")):  # keeper, command
            env = environ_after_exec(pid, marker)
            assert "OPENAI_API_KEY" not in env and "AIRISK_CONTROL_TOKEN" not in env
            assert env["STOREFRONT_AI_TIMEOUT"] == "3" and env["X"] == "1" and env["PATH"] == os.environ["PATH"]
    finally:
        child.stop(1)


NAMES = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ_abc019*?["), min_size=1, max_size=12)


@given(environ=st.dictionaries(NAMES, st.text(max_size=5), max_size=20), keep=st.lists(NAMES, max_size=3),
       extra=st.dictionaries(NAMES, st.text(max_size=5), max_size=3))
def test_child_env_takes_only_allowed_names(environ, keep, extra):
    import fnmatch

    out = child_env(keep=keep, env=extra, environ=environ)
    for name, value in out.items():
        if name in extra:
            assert value == extra[name]
        else:
            assert value == environ[name]
            assert any(fnmatch.fnmatchcase(name, p) for p in (*BASE_ENV, *keep)), name
    for name in environ:
        if any(fnmatch.fnmatchcase(name, p) for p in (*BASE_ENV, *keep)):
            assert name in out
    assert "OPENAI_API_KEY" not in child_env(environ={"OPENAI_API_KEY": "sk", "PATH": "/bin"})
