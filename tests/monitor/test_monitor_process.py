"""`airisk monitor` as a process: killed with SIGKILL and restarted, history stays whole."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx


def _rows(db) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        count, last = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM probe_result").fetchone()
    return count, last


async def _wait_rows(db, more_than: int, within: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < within:
        if db.exists():
            try:
                if _rows(db)[0] > more_than:
                    return time.monotonic() - began
            except sqlite3.OperationalError:  # table not created yet
                pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"no new probe rows within {within}s")


def _new_rows(db, after_id: int) -> dict[str, list[datetime]]:
    """Start times of the scheduled probes stored past ``after_id``, by target."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT target, at FROM probe_result WHERE id > ? AND NOT confirm ORDER BY at",
                            (after_id,)).fetchall()
    out: dict[str, list[datetime]] = {}
    for target, at in rows:
        out.setdefault(target, []).append(datetime.fromisoformat(at).replace(tzinfo=UTC))
    return out


async def _wait_started(http, port, targets, within: float) -> datetime:
    """When /metrics first shows every target's state: the monitor sets them just before it starts
    its scheduler (after imports and migrations), so this is no earlier than the schedule's start."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        try:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        except httpx.HTTPError:  # not listening yet
            text = ""
        if all(f'airisk_target_up{{provider="{t}",region="",target="{t}"}}' in text for t in targets):
            return datetime.now(UTC)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the restarted monitor did not start within {within}s")


def _start(config, home, port):
    env = {**os.environ, "AIRISK_HOME": str(home)}
    env.pop("AIRISK_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "airisk.cli", "monitor", "--config", str(config),
                             "--metrics-port", str(port)], env=env, stderr=subprocess.PIPE, text=True)


async def test_kill_9_and_restart_keeps_history_and_resumes_within_an_interval(emulator, tmp_path):
    from tests.airisk.test_cli import _free_port

    config = tmp_path / "airisk.yaml"
    config.write_text(f"defaults: {{interval: 1s}}\ntargets:\n"
                      f"  - provider: openai\n    base_url: {emulator.url}/openai/v1\n"
                      f"  - provider: gemini\n    base_url: {emulator.url}/gemini/v1beta\n")
    db = tmp_path / "airisk.db"
    port = _free_port()
    first = _start(config, tmp_path, port)
    try:
        await _wait_rows(db, 6, within=20)
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'airisk_target_up{provider="openai",region="",target="openai"} 1.0' in metrics
        await asyncio.sleep(0.7)  # let a flush land
        before, last_id = _rows(db)
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 5)  # off the loop, which also serves the emulator
    finally:
        if first.poll() is None:
            first.kill()
        first.stderr.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    after_kill, last_after_kill = _rows(db)
    assert after_kill >= before  # nothing committed was lost
    second = _start(config, tmp_path, port)
    try:
        # Blocking reads and waits go to a thread: this loop serves the emulator the monitor probes.
        assert "airisk monitor: 2 targets" in await asyncio.to_thread(second.stderr.readline)
        async with httpx.AsyncClient() as http:
            started = await _wait_started(http, port, ["openai", "gemini"], within=30)
        # Five scheduled probes of each target (four at least), stored; start-up time is not timed here.
        await _wait_rows(db, after_kill + 10, within=30)
        resumed = _new_rows(db, last_after_kill)
        for target in ("openai", "gemini"):
            starts = resumed.get(target, [])
            assert len(starts) >= 4, (target, starts)
            # Resumed within one interval (1 s) of the schedule's start, measured from the monitor's
            # own probe stamps; 1.5 s more for loop lag in a fresh process on a loaded machine. A
            # monitor that does not resume stores nothing, or only after several intervals.
            assert (starts[0] - started).total_seconds() <= 1.0 + 1.5, (target, started, starts)
            # ...and then every interval: the median gap between starts is 1 s (a late run shortens
            # the next gap, so load moves single gaps, not the median).
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
            assert 0.75 <= statistics.median(gaps) <= 1.25, (target, gaps)
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM probe_result WHERE id <= ?", (last_id,)).fetchone()[0] == before
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 15) == 0
    finally:
        if second.poll() is None:
            second.kill()
        second.stderr.close()
