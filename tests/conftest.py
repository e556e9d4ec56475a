"""Shared fixtures: a real emulator on a loopback port, and the shared probe client."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chaos.emulator import Emulator, Profile, bound_port, serve
from probes import Deadlines, Target, make_client
from probes.catalog import get_provider

SHARED = Path(__file__).resolve().parents[2] / "shared"
# Quick but not instant: a first token after 20 ms, tokens 2 ms apart.
FAST = Profile(ttft_ms=20, token_gap_ms=2, tokens=8)
SHORT = Deadlines(connect=2.0, first_token=1.0, total=5.0, stall=0.4)


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Each test leaves logging as it found it: `monitor.logsetup.configure` (run in process by the CLI's
    tests) sets the root's level and handler, quietens chatty libraries (httpx, apscheduler) and hooks
    warnings and uncaught exceptions, and a later test that reads httpx's log lines must not depend on
    which test ran first."""
    root = logging.getLogger()
    levels = {name: logger.level for name, logger in logging.Logger.manager.loggerDict.items()
              if isinstance(logger, logging.Logger)}
    state = (root.level, list(root.handlers), sys.excepthook)
    yield
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != levels.get(name, logging.NOTSET):
            logger.setLevel(levels.get(name, logging.NOTSET))
    root.setLevel(state[0])
    root.handlers[:] = state[1]
    sys.excepthook = state[2]
    logging.captureWarnings(False)


class InThread:
    """An event loop in a background thread, for tests that drive loopback servers with blocking
    sockets (byte for byte, and from hypothesis): a subclass gives `_start` and `_stop`, and
    ``with`` runs them on the loop; `call` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        self.call(self._start())
        return self

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc) -> None:
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError


async def until(done, within: float = 20.0, what: str = "the condition") -> None:
    """Polls ``done()`` until true; a slow machine only makes this take longer, up to ``within`` s."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while not done():
        if loop.time() > give_up:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.02)


class RunningEmulator:
    def __init__(self, emu: Emulator, url: str) -> None:
        self.emu = emu
        self.url = url

    def target(self, provider: str, **overrides) -> Target:
        p = get_provider(provider)
        overrides.setdefault("deadlines", SHORT)
        return Target.from_provider(p, base_url=self.url + p.emulator_prefix, key_env=None, **overrides)


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    emu = Emulator(seed=7, profile=Profile(**{k: getattr(FAST, k) for k in FAST.__dataclass_fields__}))
    runner = await serve(emu, port=0)
    try:
        yield RunningEmulator(emu, f"http://127.0.0.1:{bound_port(runner)}")
    finally:
        emu.reset()
        await runner.cleanup()


@pytest.fixture
async def client():
    async with make_client() as c:
        yield c


def need(available: bool, reason: str) -> None:
    """Skip with ``reason`` where a component is missing, but fail under CI=true, where it must run.
    Also at a module's top (the whole module then skips, or fails to collect under CI)."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason, allow_module_level=True)
