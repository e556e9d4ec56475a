"""Async plumbing behind the CLI: event loop choice, probing rounds, the emulator's life."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

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


def _force_exit(signum: int) -> None:
    """A signal while stopping: the clean stop is stuck or too slow for the user, so leave now."""
    os.write(2, b"airisk: second signal, exiting now without cleaning up\n")
    os._exit(128 + signum)


async def _until_signalled(*, announce: str | None = None) -> None:
    """Wait for SIGINT or SIGTERM (printing ``announce`` to stderr when one comes).

    Once this wait is over, by a signal or because the caller stopped waiting (a child died),
    the process is on its way out: from then on the next SIGINT or SIGTERM exits at once
    (status 128 + signal), so a stop that hangs can always be cut short with a second Ctrl-C."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
        if announce:
            print(announce, file=sys.stderr, flush=True)
    finally:
        for sig in installed:
            loop.add_signal_handler(sig, _force_exit, sig)


async def until_signalled_or(alive) -> None:
    """Wait for SIGINT/SIGTERM, or until ``alive()`` turns false (a child process died)."""
    stopper = asyncio.create_task(_until_signalled())
    while not stopper.done() and alive():
        await asyncio.wait([stopper], timeout=0.5)
    stopper.cancel()


async def monitor_forever(*, config, engine, region: str, metrics_port: int, metrics_host: str) -> None:
    from monitor.service import MonitorService

    service = MonitorService(config=config, engine=engine, region=region)
    server = service.metrics.serve(port=metrics_port, host=metrics_host) if metrics_port else None
    stop = asyncio.Event()
    signals = asyncio.create_task(_until_signalled())
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
    """``airisk emulate``. ``allow_external`` None: taken from ``host`` (the CLI refuses a non-loopback
    address without the flag). Served beyond loopback, the control API needs a token (exit 2 without)."""
    from chaos.control import run_timeline, validate_script
    from chaos.controlguard import ControlGuard, ControlGuardError, is_loopback_name
    from chaos.emulator import Emulator, Profile, serve

    if allow_external is None:
        allow_external = not is_loopback_name(host.strip("[]").lower())
    try:
        guard = ControlGuard.for_server(host, allow_external=allow_external)
        script = validate_script(timeline) if timeline is not None else None
    except (ControlGuardError, ValueError) as exc:
        print(f"airisk: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    profile = Profile()
    if ttft_ms is not None:
        profile.ttft_ms = ttft_ms
    if token_gap_ms is not None:
        profile.token_gap_ms = token_gap_ms
    emu = Emulator(seed=seed, profile=profile)
    runner = await serve(emu, host=host, port=port, guard=guard)
    print(f"airisk emulator on http://{host}:{port} (control API: /_airisk/, Ctrl-C stops)", flush=True)
    if script is not None:
        emu.timeline = asyncio.create_task(run_timeline(emu, script.steps, repeat=script.repeat,
                                                        period=script.period))
    try:
        await _until_signalled(announce="airisk emulator: stopping (Ctrl-C again to quit at once)")
    finally:
        emu.reset()
        await runner.cleanup()


async def proxy_forever(*, host: str, port: int, routes, log_size: int, engine=None,
                        allow_external: bool = False, grace: float | None = None, head_timeout_s: float | None = None,
                        max_body: int | None = None, capture=None) -> None:
    """``airisk proxy``: serve until SIGINT/SIGTERM, then wait at most ``grace`` seconds for requests
    in flight (a ``hang`` fault's request is cancelled then); a second signal exits at once.
    ``capture`` (`chaos.proxycapture`, from ``--capture``): the proxy starts and stops its writer."""
    from chaos.proxy import FaultProxy
    from chaos.proxyserve import GRACE_S, serve_proxy

    grace = GRACE_S if grace is None else grace

    store = None
    if engine is not None:
        from chaos.proxystore import LogStore
        from monitor.store import migrate

        migrate(engine)
        store = LogStore(engine, source=f"{host}:{port}")
    limits = {"head_timeout_s": head_timeout_s} if head_timeout_s is not None else {}
    proxy = FaultProxy(routes, log_size=log_size, sink=store.sink if store else None, max_body=max_body,
                       capture=capture, **limits)
    running = await serve_proxy(proxy, host=host, port=port, allow_external=allow_external, grace=grace)
    print(f"airisk fault proxy on http://{host}:{running.port}/<route>/... ({len(routes)} routes; "
          f"control API: /_airisk/, `airisk fault --help`; Ctrl-C stops)", flush=True)
    stop = asyncio.Event()
    writer = asyncio.create_task(store.run(stop)) if store else None
    try:
        await _until_signalled(announce=f"airisk fault proxy: stopping, waiting up to {grace:g} s for requests in "
                                        "flight (Ctrl-C again to quit at once)")
    finally:
        try:
            await running.stop()  # first: requests ending within the grace still reach the store
        finally:
            stop.set()
            if writer is not None:
                await writer
            if engine is not None:
                engine.dispose()
