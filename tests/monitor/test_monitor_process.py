"""`airisk monitor` as a process: killed with SIGKILL and restarted, history stays whole."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

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
        first.wait(5)
    finally:
        if first.poll() is None:
            first.kill()
        first.stderr.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    after_kill, _ = _rows(db)
    assert after_kill >= before  # nothing committed was lost
    second = _start(config, tmp_path, port)
    try:
        assert "airisk monitor: 2 targets" in second.stderr.readline()
        waited = await _wait_rows(db, after_kill, within=10)
        assert waited <= 1.0 + 2.0  # one interval, plus start-up (imports, migrations)
        await _wait_rows(db, after_kill + 4, within=10)
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM probe_result WHERE id <= ?", (last_id,)).fetchone()[0] == before
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    finally:
        if second.poll() is None:
            second.kill()
        second.stderr.close()
