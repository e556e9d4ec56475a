"""`airisk monitor --log-format json` as a process: what it says on stderr while a provider goes down.

Real processes (`airisk emulate`, `airisk monitor`) and a real webhook receiver on loopback: the
emulated openai starts failing, the monitor detects it, alerts the webhook, and its stderr carries
the alert-sent line as one JSON object, with the fields a log pipeline filters on and no secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from airisk.cli import LOG_FORMATS, LOG_LEVELS
from monitor import logsetup
from tests.airisk.test_cli import _free_port
from tests.monitor.test_alerts_harness import Receiver

TOKEN = secrets.token_hex(16)


def test_the_cli_offers_the_levels_and_formats_logsetup_knows():
    assert (LOG_LEVELS, LOG_FORMATS) == (logsetup.LEVELS, logsetup.FORMATS)


class Lines:
    """Collects a pipe's lines in a thread, so the test's loop keeps serving the receiver."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        with pipe:
            for line in pipe:
                self.lines.append(line.rstrip("\n"))

    def join(self) -> None:
        """Waits for the end of the pipe (the process has exited): every line is in."""
        self._thread.join(10)

    def json(self) -> list[dict]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    async def wait_for(self, match, within: float, what: str) -> dict:
        give_up = time.monotonic() + within
        while time.monotonic() < give_up:
            found = next((r for r in self.json() if match(r)), None)
            if found is not None:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"not within {within}s: {what}; stderr so far:\n" + "\n".join(self.lines[-40:]))


@contextlib.contextmanager
def process(args: list[str], **kwargs):
    proc = subprocess.Popen([sys.executable, "-m", "airisk.cli", *args], text=True, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(OSError, ValueError):
                    pipe.close()


async def _healthy(url: str, proc: subprocess.Popen, within: float = 60) -> None:
    give_up = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while time.monotonic() < give_up:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}/_airisk/health", timeout=0.5)).status_code == 200:
                    return
            if proc.poll() is not None:
                pytest.fail("the emulator exited")
            await asyncio.sleep(0.1)
    pytest.fail(f"the emulator did not answer within {within}s")


async def test_a_provider_going_down_is_said_on_stderr_as_json_lines(tmp_path):
    receiver = Receiver()
    await receiver.start()
    port = _free_port()
    emulator = f"http://127.0.0.1:{port}"
    config = tmp_path / "airisk.yaml"
    config.write_text(f"""
defaults: {{interval: 1s}}
targets:
  - {{provider: openai, base_url: {emulator}/openai/v1}}
alerts:
  group_window: 1s
  channels: [{{name: oncall, type: webhook, url_env: ONCALL_URL}}]
  rules: [{{rule: down, channels: [oncall]}}, {{rule: recovered, channels: [oncall]}}]
features:
  checkout-help: {{criticality: critical, chain: [{{backend: openai}}]}}
lifecycle: {{enabled: true}}
""")
    env = {**os.environ, "AIRISK_HOME": str(tmp_path), "ONCALL_URL": f"{receiver.url}/hook/{TOKEN}",
           "AIRISK_LOG_FORMAT": "json"}  # the environment's setting; --log-format json below says the same
    env.pop("AIRISK_DATABASE_URL", None)
    try:
        with process(["emulate", "--port", str(port), "--ttft-ms", "5", "--token-gap-ms", "1"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as emu:
            await _healthy(emulator, emu)
            with process(["monitor", "--config", str(config), "--metrics-port", "0", "--log-format", "json",
                          "--log-level", "info"], env=env, stderr=subprocess.PIPE) as monitor:
                said = Lines(monitor.stderr)
                async with httpx.AsyncClient() as http:
                    # Let it see openai up first, then break it (the lease outlives the test).
                    await _until_probed(tmp_path / "airisk.db")
                    added = await http.post(f"{emulator}/_airisk/faults",
                                            json={"type": "overloaded", "route": "openai", "for_s": 120})
                    assert added.status_code in (200, 201), added.text
                sent = await said.wait_for(lambda r: r.get("event") == "alert_sent", 90, "the alert-sent line")
                assert receiver.accepted("/hook/"), "the webhook got nothing, yet the monitor said it sent"
                monitor.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(monitor.wait, 30) == 0
                await asyncio.to_thread(said.join)
    finally:
        await receiver.stop()
    lines = said.lines
    assert lines[0].startswith("airisk monitor: 1 targets")  # the start banner stays as it was
    records = [json.loads(line) for line in lines[1:] if line.strip()]  # every other line is one JSON object
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert (sent["level"], sent["logger"], sent["channel"], sent["rule"], sent["action"], sent["attempt"]) == (
        "info", "monitor.alerts.dispatch", "oncall", "down", "trigger", 1)
    assert sent["title"] == "openai: openai is DOWN" and sent["provider"] == "openai" and sent["target"] == "openai"
    assert sent["ts"].endswith("Z") and sent["event_key"].startswith("down:")
    assert TOKEN not in "\n".join(lines)
    # No line per probe at info: not httpx's per request, nor apscheduler's per job run.
    assert not [r for r in records if r["logger"] == "httpx" or r["logger"].startswith("apscheduler")]
    said_by = {r["logger"] for r in records}
    assert "monitor.alerts.dispatch" in said_by and len(records) < 60, said_by
    # The monitor says the state change and the incident before the alert, with their fields.
    order = [r.get("event") for r in records]
    down = next(r for r in records if r.get("event") == "state_change" and r.get("to_state") == "down")
    assert (down["target"], down["from_state"]) == ("openai", "up") and down["cause"], down
    assert "incident_opened" in order and order.index("state_change") < order.index("alert_sent")
    assert order.index("incident_opened") < order.index("alert_sent")
    # The page names the feature the outage hits and that nothing serves it (the running service passes
    # the impact to the rules: monitor/service.py `_enqueue`).
    page = next(r.body for r in receiver.accepted("/hook/") if r.body.get("action") == "trigger")
    assert page["severity"] == "critical" and page["worst_criticality"] == "critical", page
    (feature,) = page["impact"]["features"]
    assert (feature["feature"], feature["criticality"], feature["serving"]) == ("checkout-help", "critical", None)


async def _until_probed(db, within: float = 60) -> None:
    import sqlite3

    give_up = time.monotonic() + within
    while time.monotonic() < give_up:
        with contextlib.suppress(sqlite3.OperationalError):
            if db.exists():
                with sqlite3.connect(db) as conn:
                    if conn.execute("SELECT count(*) FROM probe_result WHERE status = 'up'").fetchone()[0] >= 2:
                        return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the monitor stored no up probe within {within}s")


@pytest.mark.parametrize("command", ["monitor", "up"])
def test_a_bad_log_option_is_one_line_naming_it(command, tmp_path):
    from click.testing import CliRunner

    from airisk.cli import main

    bad_env = CliRunner().invoke(main, [command, "--config", str(tmp_path / "none.yaml")],
                                 env={"AIRISK_LOG_LEVEL": "verbose"})
    assert bad_env.exit_code == 2
    assert ("Invalid value for '--log-level' (env var: 'AIRISK_LOG_LEVEL'): 'verbose' is not one of 'debug', "
            "'info', 'warning', 'error'") in bad_env.output
    bad_flag = CliRunner().invoke(main, [command, "--log-format", "yaml"])
    assert bad_flag.exit_code == 2
    assert "'--log-format' (env var: 'AIRISK_LOG_FORMAT'): 'yaml' is not one of 'text', 'json'" in bad_flag.output
    shown = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
    assert "[env var: AIRISK_LOG_FORMAT; default: text]" in shown
    assert "[env var: AIRISK_LOG_LEVEL; default: info]" in shown


def test_up_logs_its_in_process_monitor_as_asked(monkeypatch, tmp_path):
    import logging

    from click.testing import CliRunner

    import airisk.up
    from airisk.cli import main

    async def fake_run_up(**kwargs):  # stands for the monitor `up` runs in its own process
        logging.getLogger("monitor.service").info("openai@eu: up -> down", extra={"event": "state_change"})
        logging.getLogger("monitor.service").debug("not at info")

    monkeypatch.setattr(airisk.up, "run_up", fake_run_up)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    level, handlers, hook = root.level, list(root.handlers), sys.excepthook
    try:
        result = CliRunner().invoke(main, ["up", "--demo", "--log-format", "json"],
                                    env={"AIRISK_DASHBOARD_PASSWORD": None, "AIRISK_DASHBOARD_AUTH": None})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        sys.excepthook = hook
        logging.captureWarnings(False)
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    assert (line["msg"], line["event"], line["logger"], line["level"]) == (
        "openai@eu: up -> down", "state_change", "monitor.service", "info")
