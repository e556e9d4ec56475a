"""What does ``airisk proxy --capture`` cost the proxy? Its request rate with and without capture, in one run.

Run as ``.venv/bin/python bench/proxy_overhead.py --capture [--seconds 5] [--rounds 3]`` (or this file).
One upstream, the airisk emulator on loopback answering at once (TTFT 0, no token gaps); the same
airisk proxy started three times, the same way (airisk's own event loop, `chaos.proxy.FaultProxy` and
`chaos.proxyserve.serve_proxy`, as `airisk proxy` runs them), with no fault active:

- ``no capture``: the proxy as it runs without ``--capture``;
- ``--capture bench`` (N = 200, the default): the quota is used up in the first 20 s (at most
  `chaos.proxycapture.RATE`, 10 a second), and from then on a request costs one dict lookup more;
- ``--capture bench:100000``: captures for the whole run, at most 10 a second (the default rate);
- ``--capture bench:100000``, no rate limit (not a CLI setting; ``Capture(rate=None)``): every request
  captured for the whole run, the worst case the rate exists for: each body and answer kept, then
  parsed, reassembled, redacted and written to SQLite by the writer thread, which competes with the
  event loop for the GIL.

Every request carries ``X-AIRisk-Feature: bench``. wrk (-t1 -c16) measures req/s for a non-streamed
and a streamed (12 SSE events) completion, each row once a round, the rows in a new order every
round. On a shared machine the rate drifts more between rounds than capture changes it, so each row
is compared with ``no capture`` in the same round: the table gives the median of those paired ratios
(and their middle half), each row's median req/s, the proxy's CPU per request (its process, writer
thread included) and, for the capturing rows, what the capture did (written, over the rate, dropped,
skipped). CPU
placement as in bench/proxy_overhead.py: each proxy alone on CPU 0, the emulator and wrk on CPU 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.probe_accuracy import emulator_process, free_port  # noqa: E402
from bench.proxy_overhead import LOAD_CPU, PLAIN_BODY, TOKENS, Row, cpu_seconds, launch, run_wrk  # noqa: E402

FEATURE = "bench"
STREAM_BODY = json.dumps({"model": "gpt-4o-mini", "max_tokens": TOKENS, "stream": True,
                          "messages": [{"role": "user", "content": "What is 2 plus 3?"}]})
# The proxy process: what `airisk proxy [--capture ...]` builds, without the CLI's banner and signals.
LAUNCHER = """
import asyncio, sys
from airisk.runtime import run
from chaos.proxy import FaultProxy
from chaos.proxyserve import serve_proxy
from chaos.routes import catalog_routes
port, emulator, n, db, limited = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"

async def main():
    capture = None
    if n:
        from chaos.proxycapture import Capture
        from chaos.proxystore import capture_writer, stored_captures
        from monitor.quality.redact import Redactor
        from monitor.store import make_engine, migrate
        engine = make_engine(f"sqlite:///{db}")
        migrate(engine)
        capture = Capture({"bench": n}, write=capture_writer(engine, Redactor()),
                          stored=stored_captures(engine, ["bench"]), **({} if limited else {"rate": None}))
    proxy = FaultProxy(catalog_routes(emulator), capture=capture)
    await serve_proxy(proxy, port=port)
    await asyncio.Event().wait()

run(main())
"""


def _script(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.lua"
    path.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.headers["X-AIRisk-Feature"] = "{FEATURE}"\n')
    return path


def main(seconds: float, rounds: int) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: install it with `apt-get install -y wrk`")
    os.sched_setaffinity(0, {LOAD_CPU})
    # (A first word of its own per row: bench/proxy_overhead.launch names each row's log by it.)
    specs = [("none: no capture", 0, True), ("N=200: --capture bench", 200, True),
             ("rate10: --capture bench:100000", 100_000, True),
             ("all: --capture bench:100000, no rate", 100_000, False)]
    with emulator_process(free_port(), ttft_ms=0, gap_ms=0) as emu, contextlib.ExitStack() as stack, \
            tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scripts = {"non-streamed": _script(folder, "plain", PLAIN_BODY), "streamed": _script(folder, "stream",
                                                                                               STREAM_BODY)}
        rows: list[Row] = []
        for name, n, limited in specs:
            port = free_port()
            row = Row(name, url=f"http://127.0.0.1:{port}/openai/chat/completions")
            launch(stack, row, [sys.executable, "-c", LAUNCHER, str(port), emu, str(n), str(folder / f"{port}.db"),
                                "1" if limited else "0"], env={**os.environ, "PYTHONPATH": str(ROOT)})
            if row.problem:
                sys.exit(f"{row.name}: {row.problem}")
            rows.append(row)
        rps: dict[tuple[str, str], list[float]] = {}
        ratio: dict[tuple[str, str], list[float]] = {}  # to "no capture" in the same round and kind
        cpu: dict[tuple[str, str], list[float]] = {}
        order = list(rows)
        for number in range(rounds):
            for kind, script in scripts.items():
                random.shuffle(order)
                got: dict[str, float] = {}
                for row in order:
                    if number == 0:
                        run_wrk(row.url, 1.0, script)  # warm-up
                    cpu0 = cpu_seconds(row.proc.pid)
                    result = run_wrk(row.url, seconds, script)
                    if result["errors"]:
                        print(f"   ({row.name}, {kind}: {result['errors']} errors)")
                    got[row.name] = result["rps"]
                    rps.setdefault((row.name, kind), []).append(result["rps"])
                    cpu.setdefault((row.name, kind), []).append(
                        (cpu_seconds(row.proc.pid) - cpu0) / max(1, result["requests"]) * 1e6)
                for row in rows:
                    ratio.setdefault((row.name, kind), []).append(got[row.name] / got[rows[0].name])
        states = {row.name: httpx.get(row.url.split("/openai/")[0] + "/_airisk/capture").json() for row in rows}

    print(f"airisk proxy with and without --capture: wrk -t1 -c16 -d{seconds:g}s, {rounds} round(s), the rows "
          f"in a new order each round; emulator TTFT 0, no gaps; every request X-AIRisk-Feature: {FEATURE}")
    print("   'vs none': the median over the rounds of each round's ratio to 'no capture' (drift cancels), with "
          "the middle half of them")
    print(f"   {'airisk proxy':<42}{'request':<14}{'req/s':>8}{'vs none':>9}{'middle half':>15}{'CPU/req':>10}")
    for kind in scripts:
        for row in rows:
            ratios = sorted(ratio[(row.name, kind)])
            q1, q3 = (statistics.quantiles(ratios, n=4)[0], statistics.quantiles(ratios, n=4)[2]) \
                if len(ratios) > 1 else (ratios[0], ratios[0])
            print(f"   {row.name:<42}{kind:<14}{statistics.median(rps[(row.name, kind)]):8.0f}"
                  f"{statistics.median(ratios):8.3f}x{q1:8.2f}-{q3:.2f}x"
                  f"{statistics.median(cpu[(row.name, kind)]):8.0f}µs")
    for row in rows[1:]:
        state = states[row.name]
        counts = {k: v for k, v in state.items() if k not in ("features", "pending")}
        print(f"   {row.name}: {state['features'][FEATURE]['taken']} of {state['features'][FEATURE]['limit']} "
              f"taken; {', '.join(f'{k} {v}' for k, v in counts.items()) or 'nothing written yet'}")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="wrk duration per row and request kind")
    parser.add_argument("--rounds", type=int, default=10, help="rounds over every row")
    args = parser.parse_args()
    main(args.seconds, args.rounds)
