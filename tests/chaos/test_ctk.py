"""The Chaos Toolkit extension (chaosairisk) under the real ``chaos`` CLI: an experiment against the
storefront behind the fault proxy, run as ``chaos run``, judged by its journal; and ``chaos discover``."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need

need(importlib.util.find_spec("chaoslib") is not None,
     "the chaostoolkit extra is not installed: pip install 'airisk[chaostoolkit]'")

from chaos.control.client import ControlClient  # noqa: E402 (after the check: the extra may be missing)

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "examples" / "storefront" / "tests" / "experiment.json"
CHAOS = shutil.which("chaos", path=str(Path(sys.executable).parent)) or shutil.which("chaos")


class Stack:
    """The emulator, the fault proxy in front of it and the storefront behind the proxy, each on a free
    loopback port, on one event loop in a thread (the ``chaos`` subprocess calls them while the test waits)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self) -> None:
        import uvicorn

        from chaos.emulator import Emulator, Profile, bound_port, serve
        from chaos.proxy import FaultProxy
        from chaos.proxyserve import serve_proxy
        from chaos.routes import catalog_routes
        from examples.storefront import Settings, create_app

        self.runner = await serve(Emulator(seed=7, profile=Profile(ttft_ms=10, token_gap_ms=1, tokens=6)), port=0)
        emulator = f"http://127.0.0.1:{bound_port(self.runner)}"
        self.proxy = await serve_proxy(FaultProxy(catalog_routes(emulator)), port=0)
        settings = Settings(openai_base_url=self.proxy.url + "/openai", local_base_url=self.proxy.url + "/local",
                            anthropic_base_url=self.proxy.url + "/anthropic", ai_timeout=5)
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=0,
                                                    log_level="warning", lifespan="on"))
        self.serving = asyncio.ensure_future(self.server.serve())
        for _ in range(1500):  # uvicorn says it has started through a flag only
            if self.server.started or self.serving.done():
                break
            await asyncio.sleep(0.02)
        assert self.server.started, "the storefront did not start"
        self.storefront = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.serving
        await self.proxy.stop()
        await self.runner.cleanup()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    running = Stack()
    try:
        running.run(running.start())
        yield running
        running.run(running.stop())
    finally:
        running.close()


def chaos(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    assert CHAOS, "the chaos CLI is not installed (pip install 'airisk[chaostoolkit]')"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([CHAOS, "--no-version-check", "--log-file", str(cwd / "chaostoolkit.log"), *args],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def run_experiment(stack: Stack, tmp_path: Path, **env: str) -> tuple[dict, int]:
    journal = tmp_path / "journal.json"
    done = chaos("run", "--journal-path", str(journal), str(EXPERIMENT), cwd=tmp_path,
                 env={"AIRISK_PROXY_URL": stack.proxy.url, "STOREFRONT_URL": stack.storefront, **env})
    assert journal.exists(), done.stdout + done.stderr
    return json.loads(journal.read_text()), done.returncode


def outputs(journal: dict) -> dict[str, object]:
    return {run["activity"]["name"]: run for run in journal["run"]}


def test_the_chat_experiment_holds_and_its_rollback_removes_the_fault(stack, tmp_path):
    journal, code = run_experiment(stack, tmp_path)
    assert (journal["status"], code) == ("completed", 0), json.dumps(journal, indent=1)[:3000]
    assert journal["deviated"] is False
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    assert journal["steady_states"]["after"]["steady_state_met"] is True
    ran = outputs(journal)
    fault = ran["break-the-provider"]["output"]
    assert (fault["type"], fault["scope"]["route"]) == ("overloaded", "anthropic")
    down = ran["the-provider-is-down"]["output"]
    assert (down["status"], down["http_status"]) == ("down", 529)
    now = ran["who-answers-now"]["output"]
    assert (now["status"], now["backend"]) == (200, "local")  # the fallback answered
    assert [r["output"] for r in journal["rollbacks"]] == [{"removed": 1}]
    with ControlClient(stack.proxy.url) as control:
        assert control.faults() == []


def test_the_description_experiment_deviates_for_want_of_a_fallback(stack, tmp_path):
    journal, code = run_experiment(stack, tmp_path, STOREFRONT_FEATURE_PATH="/api/description",
                                   AIRISK_BROKEN_ROUTE="openai")
    assert (journal["status"], journal["deviated"], code) == ("completed", True, 1)  # `chaos run` fails a CI step
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    assert journal["steady_states"]["after"]["steady_state_met"] is False
    assert outputs(journal)["who-answers-now"]["output"]["status"] == 503
    assert [r["output"] for r in journal["rollbacks"]] == [{"removed": 1}]
    with ControlClient(stack.proxy.url) as control:
        assert control.faults() == []


def test_chaos_discover_finds_the_activities(tmp_path):
    done = chaos("discover", "--no-system-info", "--no-install", "--discovery-path", str(tmp_path / "d.json"),
                 "airisk", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads((tmp_path / "d.json").read_text())
    assert found["extension"]["name"] == "chaosairisk"
    by_name = {a["name"]: a for a in found["activities"]}
    assert {n: a["type"] for n, a in by_name.items()} == {
        "add_fault": "action", "remove_faults": "action", "reset": "action",
        "probe_target": "probe", "feature_status": "probe", "drill_verdict": "probe"}
    assert {a["name"]: a.get("type") for a in by_name["add_fault"]["arguments"]} == {
        "url": "string", "fault_type": "string", "route": "string", "feature": "string", "model": "string",
        "probability": "number", "lease_s": "number", "params": "mapping", "timeout_s": "number"}
    assert all(a["doc"] for a in found["activities"])
