"""Monitor under load: 200 targets at a 10 s interval against the emulator.

The emulator runs in its own process on CPU 1 (TTFT 200 ms, 20 ms between tokens); the
whole monitor (`monitor.service.MonitorService`: scheduler, probes, detection, metrics,
the buffered SQLite writer with its rollups) runs here on CPU 0. Prints, in one run:
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
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import Session, select  # noqa: E402

from bench.probe_accuracy import GAP_MS, TTFT_MS, emulator_process, free_port, pct  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.service import MonitorService  # noqa: E402
from monitor.store import make_engine  # noqa: E402
from monitor.store.models import ProbeRow  # noqa: E402
from probes import make_client  # noqa: E402


async def run(url: str, n: int, interval: float, seconds: float) -> tuple[list[float], list[float], float]:
    targets = "".join(f"  - {{name: t{i:03d}, provider: openai, base_url: {url}/openai/v1}}\n" for i in range(n))
    config = parse_config(
        f"defaults: {{interval: {interval:g}s, deadlines: {{first_token: 10s, total: 30s, stall: 10s}}}}\n"
        f"targets:\n{targets}", environ={})
    with tempfile.TemporaryDirectory() as home:
        engine = make_engine(f"sqlite:///{home}/airisk.db")
        service = MonitorService(config=config, engine=engine, seed=1, status_interval=3600)
        stop = asyncio.Event()
        async with make_client(max_connections=n + 10) as client:
            task = asyncio.create_task(service.run(stop, client=client))
            await service.started.wait()
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            wall0 = time.perf_counter()
            await asyncio.sleep(seconds)
            wall = time.perf_counter() - wall0
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            stop.set()
            await task
        with Session(engine) as session:
            rows = session.exec(select(ProbeRow.ttft_ms, ProbeRow.error_kind)).all()
        engine.dispose()
    failures = sum(1 for _, kind in rows if kind != "ok")
    if failures:
        print(f"   ({failures} probes failed)")
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    delays = [d for w in service.scheduler.watches.values() for d in w.delays_ms]
    return [ttft - TTFT_MS for ttft, _ in rows if ttft is not None], delays, cpu / wall


def line(label: str, values: list[float]) -> str:
    return (f"   {label:<40} n={len(values):<5} p50 {statistics.median(values):+7.2f} ms  "
            f"p99 {pct(values, 99):+7.2f} ms  max {max(values):+7.2f} ms")


async def main(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {0})
    with emulator_process(free_port()) as url:
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10)
    args = parser.parse_args()
    import uvloop

    uvloop.run(main(args))
