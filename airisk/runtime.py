"""Async plumbing behind the CLI: event loop choice, probing rounds, the emulator's life."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

from chaos.run import settle_heap, until_signalled
from probes import Target, make_client, probe
from probes.catalog import CATALOG
from probes.result import ProbeResult

T = TypeVar("T")
EMULATOR_PORT = 8470


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when installed: lower per-event overhead means truer latency figures."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is an optional extra
        return asyncio.run(coro)
    return uvloop.run(coro)


async def probe_all(targets: list[Target], *, client: httpx.AsyncClient | None = None) -> list[ProbeResult]:
    """Probe every target once, concurrently, on one shared keep-alive client."""
    own = client is None
    client = client or make_client()
    try:
        return list(await asyncio.gather(*(probe(t, client=client) for t in targets)))
    finally:
        if own:
            await client.aclose()


async def emulator_running(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            response = await client.get(f"{url}/_airisk/health")
            return response.status_code == 200 and response.json().get("ok") is True
    except (httpx.HTTPError, ValueError):
        return False


def emulator_targets(url: str) -> list[Target]:
    """One target per catalog provider, pointed at the emulator's route for it."""
    return [
        Target.from_provider(p, base_url=url + p.emulator_prefix, key_env=None, status_page=f"{url}/status/{p.name}")
        for p in CATALOG.values()
    ]


async def until_signalled_or(alive) -> None:
    """Wait for SIGINT/SIGTERM, or until ``alive()`` turns false (a child process died)."""
    stopper = asyncio.create_task(until_signalled())
    while not stopper.done() and alive():
        await asyncio.wait([stopper], timeout=0.5)
    stopper.cancel()


async def monitor_forever(*, config, engine, region: str, metrics_port: int, metrics_host: str) -> None:
    from monitor.service import MonitorService

    service = MonitorService(config=config, engine=engine, region=region)
    server = service.metrics.serve(port=metrics_port, host=metrics_host) if metrics_port else None
    settle_heap()  # no 50 ms full collection of startup's objects in the middle of a probe's timing
    stop = asyncio.Event()
    signals = asyncio.create_task(until_signalled())
    signals.add_done_callback(lambda _: stop.set())
    try:
        await service.run(stop)
    finally:
        signals.cancel()
        if server is not None:
            server[0].shutdown()
            server[0].server_close()
        engine.dispose()


async def emulate_forever(*, host: str, port: int, seed: int | None, ttft_ms: float | None,
                          token_gap_ms: float | None, timeline: dict | None,
                          allow_external: bool | None = None) -> None:
    """``airisk emulate``: `chaos.run.emulate_forever`. ``allow_external`` None: taken from ``host`` (the CLI
    refuses a non-loopback address without the flag). Served beyond loopback, the control API needs a token
    (exit 2 without)."""
    from chaos import run as chaos_run

    await chaos_run.emulate_forever(host=host, port=port, seed=seed, ttft_ms=ttft_ms, token_gap_ms=token_gap_ms,
                                    timeline=timeline, allow_external=allow_external)


async def proxy_forever(*, host: str, port: int, routes, log_size: int, engine=None,
                        allow_external: bool = False, grace: float | None = None, head_timeout_s: float | None = None,
                        max_body: int | None = None, capture=None, fast: bool = True) -> None:
    """``airisk proxy``: `chaos.run.proxy_forever`, which serves until SIGINT/SIGTERM, then waits at most
    ``grace`` seconds for requests in flight; a second signal exits at once. ``capture``
    (`chaos.proxycapture`, from ``--capture``): the proxy starts and stops its writer."""
    from chaos import run as chaos_run

    await chaos_run.proxy_forever(host=host, port=port, routes=routes, log_size=log_size, engine=engine,
                                  allow_external=allow_external, grace=grace, head_timeout_s=head_timeout_s,
                                  max_body=max_body, capture=capture, fast=fast)
