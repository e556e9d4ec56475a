"""Where a proxy's added first-byte time goes: its two steps, timed inside the proxy, for airisk's relay,
airisk --no-relay (the ASGI course) and the floor (bench/raw_proxy.py), in one run.

The two steps on the path to a stream's first byte, as bench/proxy_overhead.py part 2 meets them (one
stream at a time, 20 ms apart, the proxy alone on CPU 0 and woken cold by each request):
- request: from the client's bytes arriving (the proxy's ``data_received``) to the upstream write;
- answer: from the upstream's first bytes arriving to the client write that carries them.
Each proxy runs in a child process (``--serve``) whose two transports are wrapped to stamp their first
write after each arrival (~1 µs of the figure is the wrapping, the same for every row); on SIGTERM it
prints the p50/p90 of both steps. The emulator (TTFT 50 ms, 10 ms gaps, 12 tokens) and the client share
CPU 1. Read the rows against each other: on this shared machine the absolute figures move from run to
run, the order and the gaps between rows much less.

Usage: .venv/bin/python bench/proxy_steps.py [--streams 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = ("relay", "asgi", "floor")
_T = {"request": 0.0, "answer": 0.0}
_STEPS: dict[str, list[float]] = {"request": [], "answer": []}


class _Stamped:
    """A transport whose first write after an arrival is timed (``step``: which arrival)."""

    __slots__ = ("step", "transport")

    def __init__(self, transport, step: str) -> None:
        self.transport, self.step = transport, step

    def write(self, data: bytes) -> None:
        began = _T[self.step]
        if began:
            _STEPS[self.step].append(time.perf_counter() - began)
            _T[self.step] = 0.0
        self.transport.write(data)

    def __getattr__(self, name: str):
        return getattr(self.transport, name)


def _stamp(client_cls, upstream_cls, first_bytes) -> None:
    """Wrap the two protocols: the client's arrivals start the request step, an answer's first
    bytes (``first_bytes(protocol, data)``) the answer step; the other side's write ends each."""
    made_c, made_u = client_cls.connection_made, upstream_cls.connection_made
    got_c, got_u = client_cls.data_received, upstream_cls.data_received
    client_cls.connection_made = lambda self, t: made_c(self, _Stamped(t, "answer"))
    upstream_cls.connection_made = lambda self, t: made_u(self, _Stamped(t, "request"))

    def client_data(self, data: bytes) -> None:
        _T["request"] = time.perf_counter()
        got_c(self, data)

    def upstream_data(self, data: bytes) -> None:
        if first_bytes(self, data):
            _T["answer"] = time.perf_counter()
        got_u(self, data)

    client_cls.data_received, upstream_cls.data_received = client_data, upstream_data


async def _serve(kind: str, port: int, emu: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if kind == "floor":
        sys.path.insert(0, str(ROOT / "bench"))
        import raw_proxy

        _stamp(raw_proxy.Client, raw_proxy.Upstream, lambda up, data: data.startswith(b"HTTP/"))
        pool = raw_proxy.Pool(emu)
        server = await asyncio.get_running_loop().create_server(lambda: raw_proxy.Client(pool), "127.0.0.1", port)
        await stop.wait()
        server.close()
    else:
        from chaos import proxyserver, upstream
        from chaos.proxy import FaultProxy
        from chaos.proxyserve import serve_proxy
        from chaos.routes import catalog_routes
        from chaos.run import settle_heap

        _stamp(proxyserver._Connection, upstream._Conn, lambda conn, data: not conn.status and not conn.headers)
        running = await serve_proxy(FaultProxy(catalog_routes(emu)), port=port, fast=kind == "relay")
        settle_heap()
        await stop.wait()
        await running.stop()
    print(json.dumps(_STEPS), flush=True)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1e6


def _stream(port: int, path: bytes, body: bytes, streams: int) -> None:
    request = b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        path, len(body), body)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(streams):
            time.sleep(0.02)
            sock.sendall(request)
            data = sock.recv(65536)
            while not data.endswith(b"0\r\n\r\n"):
                data = sock.recv(65536)


def main(streams: int) -> None:
    from bench.probe_accuracy import emulator_process, free_port

    os.sched_setaffinity(0, {1})
    body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 12, "stream": True,
                       "messages": [{"role": "user", "content": "What is 2 plus 3?"}]}).encode()
    results = {}
    with emulator_process(free_port(), ttft_ms=50, gap_ms=10) as emu:
        for kind in KINDS:
            port = free_port()
            proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port), emu], cwd=ROOT,
                                    stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
            deadline = time.time() + 15
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            _stream(port, b"/openai/v1/chat/completions" if kind == "floor" else b"/openai/chat/completions", body,
                    streams)
            proc.send_signal(signal.SIGTERM)
            results[kind] = json.loads(proc.communicate(timeout=15)[0].strip().splitlines()[-1])
    print(f"{streams} streams one at a time, 20 ms apart; µs inside the proxy, p50 / p90")
    print(f"   {'row':<26}{'request -> upstream write':>28}{'answer -> client write':>26}")
    names = {"relay": "airisk proxy (relay)", "asgi": "airisk, --no-relay", "floor": "floor (raw_proxy.py)"}
    for kind in KINDS:
        steps = results[kind]
        cells = [f"{_pct(steps[s], 0.5):7.0f} / {_pct(steps[s], 0.9):<6.0f}" for s in ("request", "answer")]
        print(f"   {names[kind]:<26}{cells[0]:>28}{cells[1]:>26}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - the `fast` extra
            asyncio.run(_serve(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
        else:
            uvloop.run(_serve(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--streams", type=int, default=300)
        main(parser.parse_args().streams)
