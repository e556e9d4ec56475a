"""Monitor under load: 200 targets at a 10 s interval against the emulator.

The emulator runs in its own process on CPU 1 (TTFT 200 ms, 20 ms between tokens); the
monitor's scheduler, probes and result handling run here on CPU 0. Prints, in one run:
- CPU used by the monitor process (share of one core);
- scheduling delay (how late each run started against its due time): p50, p99, max;
  goal p99 <= 50 ms;
- TTFT error against the emulator's configured delay, under load, beside the same figure
  for one target probed alone in the same run; goal: within 2 ms of the lone target.

Usage: .venv/bin/python bench/monitor_load.py [--seconds 60] [--targets 200] [--interval 10]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.probe_accuracy import GAP_MS, TTFT_MS, free_port, pct, start_emulator, target  # noqa: E402
from monitor.schedule import Scheduler, Watch  # noqa: E402
from probes import make_client  # noqa: E402


async def run(url: str, n: int, interval: float, seconds: float) -> tuple[list[float], list[float], float]:
    errors: list[float] = []
    failures = 0

    async def handle(watch, result, confirm):
        nonlocal failures
        if result.ttft_ms is None:
            failures += 1
        else:
            errors.append(result.ttft_ms - TTFT_MS)
        return None

    base = target(url)
    watches = [Watch(dataclasses.replace(base, name=f"t{i:03d}"), interval) for i in range(n)]
    async with make_client(max_connections=n + 10) as client:
        scheduler = Scheduler(watches=watches, client=client, handle=handle, seed=1)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.perf_counter()
        scheduler.start()
        await asyncio.sleep(seconds)
        await scheduler.stop()
        wall = time.perf_counter() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    if failures:
        print(f"   ({failures} probes failed)")
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    delays = [d for w in watches for d in w.delays_ms]
    return errors, delays, cpu / wall


def line(label: str, values: list[float]) -> str:
    return (f"   {label:<40} n={len(values):<5} p50 {statistics.median(values):+7.2f} ms  "
            f"p99 {pct(values, 99):+7.2f} ms  max {max(values):+7.2f} ms")


async def main(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {0})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    emu = start_emulator(port)
    try:
        print(f"emulator on CPU 1 (TTFT {TTFT_MS:g} ms, gap {GAP_MS:g} ms); monitor on CPU 0\n")
        alone, _, _ = await run(url, 1, 1.0, min(args.seconds, 30))
        print("one target alone, every 1 s (baseline):")
        print(line("TTFT error vs configured", alone))
        errors, delays, cpu = await run(url, args.targets, args.interval, args.seconds)
        print(f"\n{args.targets} targets every {args.interval:g} s for {args.seconds:g} s:")
        print(f"   monitor CPU: {cpu * 100:.1f}% of one core")
        print(line("scheduling delay (goal p99 <= 50 ms)", delays))
        print(line("TTFT error vs configured", errors))
        print(f"   p50 error under load minus alone: {statistics.median(errors) - statistics.median(alone):+.2f} ms;"
              f" p99: {pct(errors, 99) - pct(alone, 99):+.2f} ms (goal: within 2 ms)")
    finally:
        emu.terminate()
        emu.wait(5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10)
    args = parser.parse_args()
    import uvloop

    uvloop.run(main(args))
