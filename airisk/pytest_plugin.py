"""airisk's pytest plugin: break an AI provider for one test, and assert on what the code did about it.

Registered through the ``pytest11`` entry point, so installing airisk (with its ``chaos`` extra) is
enough. Nothing here runs unless a test asks for it: no autouse fixture, no option, and the servers
start only when a fixture that needs them is first requested. It lives in ``airisk/`` (the composition
root) rather than ``chaos/`` because it wires chaos's public parts (the emulator, the fault proxy,
`ChaosTransport`, the control client) together for a user's test suite, as the CLI does for a shell;
and because pytest imports it in every project where airisk is installed, it imports chaos only
inside the fixtures, so a core install (no ``chaos`` extra) still runs its tests untouched.

Fixtures:

- ``airisk_emulator`` (session): the emulated providers on a loopback port (``.url``,
  ``.base_url("openai")``, ``.control``);
- ``airisk_proxy`` (session): the fault proxy in front of that emulator (``.url``,
  ``.base_url("anthropic")``, ``.control``);
- ``airisk_faults`` (function): `Faults`, to break a provider for this test only, through a
  `ChaosTransport` (``airisk_faults.transport``, for an httpx client the code under test uses) or
  through the proxy (``via="proxy"``); the faults it added are removed after the test, and
  ``airisk_faults.log`` is a `RequestLog` of this test's requests with the assertions below.

Marker: ``@pytest.mark.airisk_fault("openai", "overloaded", probability=1, via="transport", **params)``
adds that fault before the test (through ``airisk_faults``, which a marked test gets by itself).

    @pytest.mark.airisk_fault("anthropic", "overloaded")
    def test_chat_falls_back(airisk_faults):
        client = httpx.Client(transport=airisk_faults.transport)
        ...  # the code under test calls Anthropic through ``client``
        airisk_faults.log.assert_answered_by("local")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

MARKER = "airisk_fault"
VIAS = ("transport", "proxy")
LEASE_S = 300.0  # a fault outlives no test by much even if teardown never runs (a killed session)
_SLACK_S = 0.05  # clock granularity allowed when checking a client waited Retry-After


class AiriskPluginError(pytest.UsageError):
    """A fixture or marker used in a way that cannot work; the message says how to fix it."""


def _need_chaos(what: str) -> None:
    from airisk.extras import missing_message

    message = missing_message(what, "chaos")
    if message is not None:
        raise AiriskPluginError(message)


# -- the servers, on one event loop in a thread of their own ------------------------------------

class _LoopThread:
    """An asyncio loop in a daemon thread: the servers keep serving while a test (sync or async, on
    whatever loop pytest-asyncio gives it) blocks or awaits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="airisk-pytest-servers", daemon=True)
        self.thread.start()

    def run(self, make: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 30.0) -> Any:
        async def call() -> Any:
            return await make()
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Server:
    """A running emulator or proxy: its root ``url``, where a provider is (``base_url``), its ``control``."""

    def __init__(self, url: str, routes: dict[str, str], emulator: Any = None) -> None:
        from chaos.control.client import ControlClient

        self.url = url
        self.routes = routes  # provider -> the path of its SDK base URL here
        self.control = ControlClient(url)
        self.emulator = emulator  # the `chaos.emulator.Emulator` itself, on the emulator

    def base_url(self, provider: str) -> str:
        """The base URL the provider's official SDK takes (``base_url=``) for ``provider`` here: as
        ``https://api.openai.com/v1`` and ``https://api.anthropic.com`` are for the real ones."""
        from probes.catalog import CATALOG

        if provider not in CATALOG:
            raise AiriskPluginError(f"provider {provider!r}: unknown (known: {', '.join(sorted(CATALOG))})")
        return self.url + self.routes[provider]


def _emulator_bases() -> dict[str, str]:
    from chaos.routes import sdk_base
    from probes.catalog import CATALOG

    return {name: sdk_base(p.dialect, p.emulator_prefix) for name, p in CATALOG.items()}


def _proxy_bases() -> dict[str, str]:
    from probes.catalog import CATALOG

    return {name: f"/{name}" for name in CATALOG}  # the proxy adds the rest of the upstream's base itself


@pytest.fixture(scope="session")
def _airisk_loop() -> Iterator[_LoopThread]:
    loop = _LoopThread()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def airisk_emulator(_airisk_loop: _LoopThread) -> Iterator[Server]:
    """The emulated providers (``airisk emulate``) on a free loopback port, quick answers, for the session."""
    _need_chaos("the airisk_emulator fixture")
    from chaos.emulator import Emulator, Profile, bound_port, serve

    emu = Emulator(seed=7, profile=Profile(ttft_ms=20, token_gap_ms=2, tokens=8))
    runner = _airisk_loop.run(lambda: serve(emu, port=0))
    server = Server(f"http://127.0.0.1:{bound_port(runner)}", _emulator_bases(), emu)
    yield server
    server.control.close()
    _airisk_loop.run(runner.cleanup)


@pytest.fixture(scope="session")
def airisk_proxy(_airisk_loop: _LoopThread, airisk_emulator: Server) -> Iterator[Server]:
    """The fault proxy (``airisk proxy``) in front of ``airisk_emulator``, on a free loopback port."""
    from chaos.proxy import FaultProxy
    from chaos.proxyserve import serve_proxy
    from chaos.routes import catalog_routes

    running = _airisk_loop.run(lambda: serve_proxy(FaultProxy(catalog_routes(airisk_emulator.url)), port=0))
    server = Server(running.url, _proxy_bases())
    yield server
    server.control.close()
    _airisk_loop.run(running.stop)


# -- the request log and what a test asserts on it ----------------------------------------------

class RequestLog:
    """The requests made during one test, oldest first (the proxy's / ChaosTransport's log entries:
    ``at``, ``route``, ``path``, ``model``, ``feature``, ``status``, ``faults``, ``ttfb_ms``, ``error``)."""

    def __init__(self, read: Callable[[], list[dict[str, Any]]]) -> None:
        self._read = read

    @property
    def entries(self) -> list[dict[str, Any]]:
        return sorted(self._read(), key=lambda e: e["at"])

    def requests(self, route: str | None = None, *, feature: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.entries
                if (route is None or e.get("route") == route) and (feature is None or e.get("feature") == feature)]

    def retries(self, route: str, *, feature: str | None = None) -> int:
        """How many times the code called ``route`` again after its first call in this test."""
        return max(len(self.requests(route, feature=feature)) - 1, 0)

    def answered_by(self, *, feature: str | None = None) -> str | None:
        """The route of the last request that got a 2xx answer, or None if none did."""
        ok = [e for e in self.requests(feature=feature) if isinstance(e.get("status"), int) and e["status"] < 300]
        return ok[-1]["route"] if ok else None

    def assert_retries(self, route: str, expected: int, *, feature: str | None = None) -> None:
        made = self.retries(route, feature=feature)
        if made != expected:
            raise AssertionError(f"{route}: expected {expected} retries, the code made {made} "
                                 f"({self._summary(route)})")

    def assert_answered_by(self, route: str | None, *, feature: str | None = None) -> None:
        got = self.answered_by(feature=feature)
        if got != route:
            raise AssertionError(f"expected the answer from {route}, it came from {got} ({self._summary(None)})")

    def assert_retry_after_honoured(self, route: str, retry_after: float) -> None:
        """Each request to ``route`` after a 429 came at least ``retry_after`` seconds after that answer."""
        calls = self.requests(route)
        limited = [(a, b) for a, b in itertools.pairwise(calls) if a.get("status") == 429]
        if not limited:
            raise AssertionError(f"{route}: no 429 followed by another request, nothing to check "
                                 f"({self._summary(route)})")
        for before, after in limited:
            answered = before["at"] + (before.get("ttfb_ms") or 0) / 1000
            waited = after["at"] - answered
            if waited + _SLACK_S < retry_after:
                raise AssertionError(f"{route}: retried {waited:.3f}s after a 429 with Retry-After {retry_after:g}s")

    def _summary(self, route: str | None) -> str:
        shown = [f"{e.get('route')} {e.get('status')}" for e in self.entries
                 if route is None or e.get("route") == route]
        return ", ".join(shown) or "no requests"


# -- faults for one test ----------------------------------------------------------------------

class Faults:
    """Faults for the current test. ``add`` breaks a provider through ``transport`` (a fresh
    `ChaosTransport` per test) or through the session's proxy (``via="proxy"``); teardown removes them."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        _need_chaos("the airisk_faults fixture")
        from chaos.transport import ChaosTransport

        self._request = request
        self.transport = ChaosTransport()
        self._proxy: Server | None = None
        self._proxy_ids: list[str] = []
        self._proxy_mark = 0
        self.log = RequestLog(self._entries)

    @property
    def proxy(self) -> Server:
        if self._proxy is None:
            self._proxy = self._request.getfixturevalue("airisk_proxy")
            seen = self._proxy.control.log(limit=1)
            self._proxy_mark = seen[-1]["id"] if seen else 0
        return self._proxy

    def _entries(self) -> list[dict[str, Any]]:
        entries = list(self.transport.log.since())
        if self._proxy is not None:
            entries += self._proxy.control.log(after=self._proxy_mark)
        return entries

    def add(self, route: str, fault_type: str, *, probability: float = 1.0, via: str = "transport",
            feature: str | None = None, model: str | None = None, for_s: float = LEASE_S,
            **params: Any) -> dict[str, Any]:
        """Break ``route`` with ``fault_type`` (a `chaos.faults.FAULT_TYPES` name); returns the fault as added."""
        from chaos.faults import Fault, FaultError

        if via not in VIAS:
            raise AiriskPluginError(f"via={via!r}: one of {', '.join(VIAS)}")
        data = {"type": fault_type, "params": params, "probability": probability, "for_s": for_s,
                "scope": {k: v for k, v in (("route", route), ("feature", feature), ("model", model)) if v}}
        try:
            fault = Fault.from_dict(data)
        except FaultError as exc:
            raise AiriskPluginError(f"airisk fault {route} {fault_type}: {exc}") from None
        if via == "proxy":
            added = self.proxy.control.add(data)
            self._proxy_ids.append(added["id"])
            return added
        self.transport.faults.add(fault)
        return fault.to_dict()

    def clear(self) -> None:
        """Remove every fault this test added (the proxy's other faults stay)."""
        from chaos.control.client import Refused

        self.transport.faults.clear()
        if self._proxy is not None:
            for fault_id in self._proxy_ids:
                with contextlib.suppress(Refused):  # its lease ran out
                    self._proxy.control.remove(fault_id)
        self._proxy_ids.clear()


@pytest.fixture
def airisk_faults(request: pytest.FixtureRequest) -> Iterator[Faults]:
    """Faults for this test (and those its ``airisk_fault`` markers name), removed after it."""
    faults = Faults(request)
    try:
        for mark in reversed(list(request.node.iter_markers(MARKER))):
            if len(mark.args) != 2:
                raise AiriskPluginError(f'@pytest.mark.{MARKER} takes a provider and a fault type, e.g. '
                                        f'@pytest.mark.{MARKER}("openai", "overloaded"); got {mark.args!r}')
            faults.add(*mark.args, **mark.kwargs)
        yield faults
    finally:
        faults.clear()
        faults.transport.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f'{MARKER}(provider, fault_type, probability=1, via="transport", **params): break a provider '
                   "for this test through airisk's ChaosTransport or fault proxy (fixture airisk_faults)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A marked test gets the fixture that applies its marker; an unmarked one is left exactly as it was.
    for item in items:
        if item.get_closest_marker(MARKER) is not None and "airisk_faults" not in getattr(item, "fixturenames", ()):
            item.fixturenames.append("airisk_faults")


__all__ = ["MARKER", "AiriskPluginError", "Faults", "RequestLog", "Server"]
