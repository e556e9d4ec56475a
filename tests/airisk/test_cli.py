"""The `airisk` command line, end to end against an emulator in its own process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from airisk.cli import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator_url():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "airisk.cli", "emulate", "--port", str(port), "--ttft-ms", "5", "--token-gap-ms", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # a cold interpreter on a loaded machine takes seconds
        while True:
            try:
                if httpx.get(f"{url}/_airisk/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"emulator did not start: {proc.stderr.read1().decode()}")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        assert proc.wait(5) == 0  # SIGTERM is a clean stop, not a crash
    proc.stdout.close()
    proc.stderr.close()


@pytest.fixture(autouse=True)
def _clean(emulator_url):
    httpx.post(f"{emulator_url}/_airisk/reset")


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_probe_without_config_probes_the_running_emulator(emulator_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./airisk.yaml here
    result = run("probe", "--emulator", emulator_url, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {line["provider"] for line in lines} >= {"openai", "anthropic", "gemini", "cohere", "ollama"}
    assert all(line["status"] == "up" and line["canary_pass"] for line in lines)


def test_probe_says_it_is_probing_the_emulator(emulator_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("probe", "--emulator", emulator_url, "--target", "openai")
    assert result.exit_code == 0
    assert f"probing the 16 emulated providers at {emulator_url}" in result.stderr
    assert "openai" in result.stdout and "pass" in result.stdout


def test_probe_exits_1_when_a_target_is_down(emulator_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    httpx.post(f"{emulator_url}/_airisk/faults", json={"type": "overloaded", "route": "anthropic"})
    result = run("probe", "--emulator", emulator_url, "--json", "--target", "anthropic", "--target", "openai")
    assert result.exit_code == 1
    by_target = {json.loads(line)["target"]: json.loads(line) for line in result.stdout.splitlines()}
    assert by_target["anthropic"]["error_kind"] == "overloaded"
    assert by_target["anthropic"]["http_status"] == 529
    assert by_target["openai"]["status"] == "up"


def test_probe_with_a_config_file(emulator_url, tmp_path):
    config = tmp_path / "airisk.yaml"
    config.write_text(
        "targets:\n"
        f"  - name: primary\n    provider: openai\n    base_url: {emulator_url}/openai/v1\n    key_env: NONE_SET\n"
        f"  - name: fallback\n    provider: ollama\n    base_url: {emulator_url}/ollama\n"
    )
    result = run("probe", "--config", str(config), "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["target"] for r in rows] == ["primary", "fallback"]
    assert rows[1]["local"] is True


def test_probe_bad_config_exits_2_with_the_problem(tmp_path):
    config = tmp_path / "airisk.yaml"
    config.write_text("targets:\n  - provider: opneai\n")
    result = run("probe", "--config", str(config))
    assert result.exit_code == 2
    assert f"{config}:2: targets[0].provider: unknown provider 'opneai'" in result.stderr


def test_probe_unknown_target_is_usage_error(emulator_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("probe", "--emulator", emulator_url, "--target", "nope")
    assert result.exit_code == 2
    assert "--target: no target named 'nope'" in result.stderr


def test_probe_with_nothing_to_probe_explains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("probe", "--emulator", f"http://127.0.0.1:{_free_port()}")
    assert result.exit_code == 2
    assert "start `airisk emulate`" in result.stderr


def test_validate_reports_each_problem_on_its_own_line(tmp_path):
    config = tmp_path / "airisk.yaml"
    config.write_text("targets:\n  - provider: openai\n    api_key: sk-live-123\n  - provider: anthropic\n"
                      "    interval: soon\n")
    result = run("validate", str(config))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{config}:3: targets[0].api_key: ")
    assert lines[1].startswith(f"{config}:5: targets[1].interval: ")
    assert "sk-live-123" not in result.output


def test_validate_ok(tmp_path):
    config = tmp_path / "airisk.yaml"
    config.write_text("targets:\n  - provider: openai\n  - provider: llamacpp\n")
    result = run("validate", str(config))
    assert result.exit_code == 0
    assert result.stdout.strip() == f"{config}: ok (2 targets)"


def test_emulate_refuses_a_public_address_without_allow_external():
    result = run("emulate", "--host", "0.0.0.0")
    assert result.exit_code == 2
    assert "--allow-external" in result.stderr


def test_emulate_rejects_a_bad_timeline(tmp_path):
    script = tmp_path / "t.yaml"
    script.write_text("steps:\n  - at: 1\n    add: {type: explode}\n")
    result = run("emulate", "--timeline", str(script))
    assert result.exit_code == 2
    assert "timeline.steps[0].add: fault.type: unknown fault 'explode'" in result.stderr


def test_installed_console_script_runs():
    exe = Path(sys.executable).with_name("airisk")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env={**os.environ}, check=True)
    assert "probe" in out.stdout and "emulate" in out.stdout


@pytest.fixture
def started(monkeypatch):
    """What `up` and `dashboard` would have started (nothing is): run_up's arguments, the dashboard's command."""
    import airisk.up

    seen: list[tuple[str, object]] = []

    async def fake_run_up(**kwargs):
        seen.append(("up", kwargs))

    monkeypatch.setattr(airisk.up, "run_up", fake_run_up)
    monkeypatch.setattr(subprocess, "call", lambda cmd, **kw: seen.append(("dashboard", cmd)) or 0)
    return seen


_UNPROTECTED = {"AIRISK_DASHBOARD_PASSWORD": None, "AIRISK_DASHBOARD_AUTH": None}


@pytest.mark.parametrize("command", [["up", "--demo"], ["dashboard"]])
def test_an_open_dashboard_address_needs_protection_not_just_allow_external(command, started, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*command, "--host", "0.0.0.0", "--allow-external", env=_UNPROTECTED)
    assert result.exit_code == 2 and started == []
    assert "refusing to serve the dashboard on 0.0.0.0 unprotected" in result.stderr
    assert "AIRISK_DASHBOARD_PASSWORD" in result.stderr and "--allow-unprotected" in result.stderr
    # loopback still needs nothing; a non-loopback address still needs --allow-external first
    assert run(*command, "--host", "0.0.0.0", env={"AIRISK_DASHBOARD_PASSWORD": "pw"}).exit_code == 2
    assert run(*command, env=_UNPROTECTED).exit_code == 0


@pytest.mark.parametrize("command", [["up", "--demo"], ["dashboard"]])
@pytest.mark.parametrize(("flags", "env"), [
    ((), {"AIRISK_DASHBOARD_PASSWORD": "correct horse", "AIRISK_DASHBOARD_AUTH": None}),
    ((), {"AIRISK_DASHBOARD_PASSWORD": None, "AIRISK_DASHBOARD_AUTH": "oidc"}),
    (("--allow-unprotected",), _UNPROTECTED),
])
def test_an_open_dashboard_address_is_served_when_protected_or_said_open(command, flags, env, started, tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*command, "--host", "0.0.0.0", "--allow-external", *flags, env=env)
    assert result.exit_code == 0, result.output
    [(what, detail)] = started
    if what == "up":
        assert detail["host"] == "0.0.0.0"
    else:
        assert detail[detail.index("--server.address") + 1] == "0.0.0.0"
        assert detail[detail.index("--client.toolbarMode") + 1] == "minimal"


def test_up_says_why_it_stopped_and_exits_1(monkeypatch, tmp_path):
    import airisk.up

    async def dies(**kwargs):
        raise airisk.up.UpError("the dashboard exited with status -9 (log: /x/dashboard.log)")

    monkeypatch.setattr(airisk.up, "run_up", dies)
    monkeypatch.chdir(tmp_path)
    result = run("up", "--demo")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("airisk up: the dashboard exited with status -9 (log: /x/dashboard.log); "
                                     "everything it started is stopped")
