"""Both control APIs on loopback, for fuzzing: send one input, get its status back.

    from tests.chaos.control_fuzz import ControlServers, ENDPOINTS

    with ControlServers() as servers:
        status = servers.send("proxy", "POST", "/_airisk/faults", b'{"type": 1}')
        assert status < 500
        assert servers.still_serving()

The emulator (aiohttp) and the fault proxy in front of it (its own HTTP/1.1 server, chaos/proxyserver.py) run on their
own event loop in a background thread, so a caller is a plain function: the hypothesis tests
in ``test_control_fuzz.py`` and ``bench/fuzz.py`` (10,000 inputs per entry point) share this.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from chaos.emulator import Emulator, Profile, bound_port, serve
from chaos.proxy import FaultProxy
from chaos.proxyserve import serve_proxy
from chaos.routes import catalog_routes

JSON = "application/json"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

# Every control endpoint of each server, as (method, path); {id} and {route} are filled with
# values that exist and values that do not by the callers that care.
ENDPOINTS: dict[str, list[tuple[str, str]]] = {
    "emulator": [
        ("GET", "/_airisk/health"), ("GET", "/_airisk/fault-types"), ("GET", "/_airisk/faults"),
        ("POST", "/_airisk/faults"), ("POST", "/_airisk/faults/f1/renew"), ("DELETE", "/_airisk/faults/f1"),
        ("DELETE", "/_airisk/faults"), ("GET", "/_airisk/profiles"), ("PUT", "/_airisk/profiles/*"),
        ("PUT", "/_airisk/profiles/openai"), ("PUT", "/_airisk/profiles/nowhere"), ("POST", "/_airisk/status/openai"),
        ("POST", "/_airisk/status/nowhere"), ("POST", "/_airisk/timeline"), ("GET", "/_airisk/log"),
        ("POST", "/_airisk/reset"),
    ],
    "proxy": [
        ("GET", "/_airisk/health"), ("GET", "/_airisk/routes"), ("GET", "/_airisk/fault-types"),
        ("GET", "/_airisk/faults"), ("POST", "/_airisk/faults"), ("POST", "/_airisk/faults/f1/renew"),
        ("DELETE", "/_airisk/faults/f1"), ("DELETE", "/_airisk/faults"), ("POST", "/_airisk/reset"),
        ("GET", "/_airisk/log"), ("DELETE", "/_airisk/log"), ("PUT", "/_airisk/faults"),
    ],
}
# Endpoints that read a body: the ones a fuzzer feeds JSON and bytes to.
BODY_ENDPOINTS = {server: [(m, p) for m, p in eps if m in ("POST", "PUT")] for server, eps in ENDPOINTS.items()}


class ControlServers:
    """The emulator and a fault proxy routed to it, on loopback ports, until ``close()``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="control-fuzz", daemon=True)
        self._thread.start()
        self.emu = Emulator(seed=7, profile=Profile(ttft_ms=1, token_gap_ms=0, tokens=4))
        self._runner, self._proxy = self._run(self._start())
        self.urls = {"emulator": f"http://127.0.0.1:{bound_port(self._runner)}", "proxy": self._proxy.url}
        self.http = httpx.Client(timeout=10)

    async def _start(self):
        runner = await serve(self.emu, port=0)
        proxy = await serve_proxy(FaultProxy(catalog_routes(f"http://127.0.0.1:{bound_port(runner)}")), port=0)
        return runner, proxy

    def _run(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def send(self, server: str, method: str, path: str, body: bytes | None = None, content_type: str | None = JSON,
             headers: dict[str, str] | None = None) -> int:
        """One request to ``server`` ("emulator" or "proxy"); its HTTP status. Raises only if the
        server did not answer at all (a dropped connection or a timeout is a failure too)."""
        sent = dict(headers or {})
        if content_type is not None and body is not None:
            sent["content-type"] = content_type
        return self.http.request(method, self.urls[server] + path, content=body, headers=sent).status_code

    def reset(self) -> None:
        """No faults, profiles, incidents or timeline left by an input that was valid."""
        for server in ("emulator", "proxy"):
            self.http.post(self.urls[server] + "/_airisk/reset").raise_for_status()

    def still_serving(self) -> bool:
        """After `reset`: both control APIs answer, and a chat request through the proxy to the
        emulator gets its answer."""
        self.reset()
        health = [self.http.get(self.urls[s] + "/_airisk/health").status_code for s in ("emulator", "proxy")]
        chat = self.http.post(self.urls["proxy"] + "/openai/chat/completions", json=CHAT)
        return health == [200, 200] and chat.status_code == 200 and bool(chat.json()["choices"])

    def close(self) -> None:
        self.http.close()
        self._run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _stop(self) -> None:
        await self._proxy.stop()
        self.emu.reset()
        await self._runner.cleanup()

    def __enter__(self) -> ControlServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_one(servers: ControlServers, server: str, method: str, path: str, body: bytes | None,
             content_type: str | None = JSON) -> int:
    """The entry point `bench/fuzz.py` calls per input: the status ``server`` answers."""
    return servers.send(server, method, path, body, content_type)
