"""Run the emulator or the fault proxy until SIGINT or SIGTERM.

``airisk emulate`` and ``airisk proxy`` call `emulate_forever` and `proxy_forever`; the drill
runner starts ``python -m chaos.run emulate|proxy ...`` (`main`, its commands named as the
``airisk`` ones), so the chaos package starts its own servers and does not call the ``airisk``
command line, its composition root.

    python -m chaos.run emulate [--host H] [--port P] [--seed N] [--ttft-ms MS] [--token-gap-ms MS]
                                [--timeline FILE.json] [--allow-external]
    python -m chaos.run proxy [--host H] [--port P] [--emulator URL] [--route NAME[:DIALECT]=URL]...
                              [--log-size N] [--grace S] [--head-timeout S] [--max-body BYTES] [--allow-external]

The options mean what the ``airisk`` commands' do (``--store`` and ``--capture`` need the
monitor's database and stay with ``airisk proxy``). A bad one: ``airisk: <what>``, exit 2. This
entry point runs on uvloop where installed, as ``airisk`` does (`run`), so a drill's proxy costs
what ``airisk proxy``'s does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

EMULATOR_PORT = 8470
PROXY_PORT = 8480


def force_exit(signum: int) -> None:
    """A signal while stopping: the clean stop is stuck or too slow for the user, so leave now."""
    os.write(2, b"airisk: second signal, exiting now without cleaning up\n")
    os._exit(128 + signum)


async def until_signalled(*, announce: str | None = None) -> None:
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
            loop.add_signal_handler(sig, force_exit, sig)


def _refuse(message: object) -> None:
    print(f"airisk: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


async def emulate_forever(*, host: str, port: int, seed: int | None, ttft_ms: float | None,
                          token_gap_ms: float | None, timeline: dict | None,
                          allow_external: bool | None = None) -> None:
    """Serve the emulator until signalled. ``allow_external`` None: taken from ``host`` (the callers
    refuse a non-loopback address without the flag). Served beyond loopback, the control API needs
    a token (exit 2 without)."""
    from chaos.control import run_timeline, validate_script
    from chaos.controlguard import ControlGuard, ControlGuardError, is_loopback_name
    from chaos.emulator import Emulator, Profile, serve

    if allow_external is None:
        allow_external = not is_loopback_name(host.strip("[]").lower())
    try:
        guard = ControlGuard.for_server(host, allow_external=allow_external)
        script = validate_script(timeline) if timeline is not None else None
    except (ControlGuardError, ValueError) as exc:
        _refuse(exc)
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
        await until_signalled(announce="airisk emulator: stopping (Ctrl-C again to quit at once)")
    finally:
        emu.reset()
        await runner.cleanup()


def proxy_routes(host: str, *, allow_external: bool, emulator: str | None, route_specs: Sequence[str]) -> dict:
    """The proxy's routes (the catalog's, to ``emulator`` when given, then each ``--route``), once the
    address is known to be safe to bind; ValueError (`chaos.proxyserve.UnsafeBind` among them) if not."""
    from chaos.controlguard import ControlGuard
    from chaos.proxyserve import check_bind
    from chaos.routes import catalog_routes, parse_route

    check_bind(host, allow_external=allow_external)
    ControlGuard.for_server(host, allow_external=allow_external)
    routes = catalog_routes(emulator)
    for spec in route_specs:
        route = parse_route(spec)
        routes[route.name] = route
    return routes


async def proxy_forever(*, host: str, port: int, routes, log_size: int, engine=None,
                        allow_external: bool = False, grace: float | None = None, head_timeout_s: float | None = None,
                        max_body: int | None = None, capture=None, fast: bool = True) -> None:
    """Serve the fault proxy until SIGINT/SIGTERM, then wait at most ``grace`` seconds for requests
    in flight (a ``hang`` fault's request is cancelled then); a second signal exits at once.
    ``fast``: relay a request that meets no fault by callbacks (`chaos.proxyfast`); off, every request
    takes the ASGI course.
    ``engine``: also keep the request log in the monitor's database. ``capture``
    (`chaos.proxycapture`, from ``--capture``): the proxy starts and stops its writer."""
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
    running = await serve_proxy(proxy, host=host, port=port, allow_external=allow_external, grace=grace, fast=fast)
    settle_heap()
    print(f"airisk fault proxy on http://{host}:{running.port}/<route>/... ({len(routes)} routes; "
          f"control API: /_airisk/, `airisk fault --help`; Ctrl-C stops)", flush=True)
    stop = asyncio.Event()
    writer = asyncio.create_task(store.run(stop)) if store else None
    try:
        await until_signalled(announce=f"airisk fault proxy: stopping, waiting up to {grace:g} s for requests in "
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


def settle_heap() -> None:
    """Collect once, then set every object alive now (the modules, the catalogues, the app) aside
    from later collections (`gc.freeze`): a full collection then scans what requests left, not
    the ~50,000 objects of startup. Measured under wrk (docs/BENCHMARKS.md, issue 16): the proxy's
    full collections paused it ~40 ms each before, a few ms after (its request log's entries hold
    no container, so they are not scanned either: `chaos.requestlog`). A monitor that pauses 40 ms
    now and then adds 40 ms to what it measures. Frozen objects are still freed when unreferenced;
    only a cycle among them would stay, and startup's cycles are collected just before."""
    gc.collect()
    gc.freeze()


# -- python -m chaos.run ------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, as the airisk commands say it
        _refuse(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m chaos.run", description="Run the emulator or the fault proxy until Ctrl-C.")
    sides = parser.add_subparsers(dest="side", required=True, parser_class=_Parser)
    emu = sides.add_parser("emulate", help="every catalog provider's protocol on one port, faults on demand")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=EMULATOR_PORT)
    emu.add_argument("--seed", type=int, default=None)
    emu.add_argument("--ttft-ms", type=float, default=None)
    emu.add_argument("--token-gap-ms", type=float, default=None)
    emu.add_argument("--timeline", default=None, metavar="FILE.json")
    emu.add_argument("--allow-external", action="store_true")
    proxy = sides.add_parser("proxy", help="the fault proxy in front of the providers (or the emulator)")
    proxy.add_argument("--host", default="127.0.0.1")
    proxy.add_argument("--port", type=int, default=PROXY_PORT)
    proxy.add_argument("--emulator", default=None, metavar="URL")
    proxy.add_argument("--route", dest="routes", action="append", default=[], metavar="NAME[:DIALECT]=URL")
    proxy.add_argument("--log-size", type=int, default=10_000)
    proxy.add_argument("--grace", type=float, default=None)
    proxy.add_argument("--head-timeout", type=float, default=600.0)
    proxy.add_argument("--max-body", type=int, default=32 << 20)
    proxy.add_argument("--allow-external", action="store_true")
    return parser


def _emulator_call(args: argparse.Namespace) -> Any:
    from probes.addresses import is_loopback

    if not is_loopback(args.host) and not args.allow_external:
        _refuse(f"--host {args.host}: not a loopback address; add --allow-external to expose the emulator")
    timeline = None
    if args.timeline is not None:
        try:
            with open(args.timeline, encoding="utf-8") as f:
                timeline = json.load(f)
        except (OSError, ValueError) as exc:
            _refuse(f"{args.timeline}: {str(exc).splitlines()[0]}")
    return emulate_forever(host=args.host, port=args.port, seed=args.seed, ttft_ms=args.ttft_ms,
                           token_gap_ms=args.token_gap_ms, timeline=timeline, allow_external=args.allow_external)


# The ranges `airisk proxy` gives its options (airisk/faultcli.py), checked here for `python -m chaos.run`.
_PROXY_RANGES = (("log_size", "--log-size", 1, None), ("grace", "--grace", 0, 3600),
                 ("head_timeout", "--head-timeout", 1, 86_400), ("max_body", "--max-body", 1024, 1 << 30))


def _proxy_call(args: argparse.Namespace) -> Any:
    for name, flag, low, high in _PROXY_RANGES:
        value = getattr(args, name)
        if value is not None and not (low <= value and (high is None or value <= high)):
            _refuse(f"{flag}: must be {f'from {low} to {high}' if high is not None else f'at least {low}'}, "
                    f"got {value}")
    try:
        routes = proxy_routes(args.host, allow_external=args.allow_external, emulator=args.emulator,
                              route_specs=args.routes)
    except ValueError as exc:
        _refuse(exc)
    return proxy_forever(host=args.host, port=args.port, routes=routes, log_size=args.log_size,
                         allow_external=args.allow_external, grace=args.grace, head_timeout_s=args.head_timeout,
                         max_body=args.max_body)


def run(coro: Coroutine[Any, Any, None]) -> None:
    """On uvloop when installed (the ``fast`` extra), else asyncio's own loop: the choice
    ``airisk/runtime.py`` makes. Measured for the proxy (bench/proxy_overhead.py): less CPU a
    request on uvloop's loop and transports."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is an optional extra
        asyncio.run(coro)
        return
    uvloop.run(coro)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    run(_emulator_call(args) if args.side == "emulate" else _proxy_call(args))


if __name__ == "__main__":
    main()
