"""Detection through the real emulator, in real time: the check behind bench/detection.py.

The emulator (its own process) replays a timeline of outages on eight provider routes;
two complete monitors (`MonitorService`, each with its own SQLite) watch the same routes at
once: airisk's defaults, and the baseline "down after 3 consecutive failures at the base
interval" with no confirmation probes. Time is compressed by 20 (a 3 s interval stands for
60 s; confirmations at 50/50/100/100 ms stand for 1/1/2/2 s, hedges after 250 ms for 5 s; a
first-token deadline of 1 s for 20 s), and outage durations and gaps are the published ones
(bench/data/incident_durations.csv, from Chu et al., ICPE 2025) scaled like
bench/detection.py's (1/30), so the two benchmarks see outages of the same length in
intervals. Noise that is not an outage: 2% of requests fail on every route all the time.
10% of outages hang instead of failing fast.

With ``--models N`` each route is watched as N targets (N models on one endpoint, as a
product with a chat model, a small model and embeddings has), and a third monitor runs
airisk's defaults with ``probe_siblings: false``, each target on its own schedule.

Prints, per policy: time to detect in intervals (median, p95; per target and outage), outages
missed (>= 2 intervals long, never declared down), false alarms (down with no outage in its
evidence).

Usage: .venv/bin/python bench/detection_replay.py [--minutes 6] [--seed 1] [--models 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.detection import load_table  # noqa: E402
from bench.probe_accuracy import emulator_process, free_port, pct  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.service import MonitorService  # noqa: E402
from monitor.store import make_engine  # noqa: E402
from probes import Status  # noqa: E402
from probes.catalog import get_provider  # noqa: E402

ROUTES = ["openai", "anthropic", "gemini", "cohere", "mistral", "groq", "together", "deepseek"]
INTERVAL = 3.0  # stands for 60 s
COMPRESS = 60.0 / INTERVAL
SCALE = 1 / 30 / COMPRESS  # real incident seconds -> replay seconds (bench/detection.py's 1/30, compressed)


def timeline(seed: int, minutes: float) -> tuple[dict, list[tuple[str, float, float]]]:
    durations, gaps = load_table()
    rng = random.Random(seed)
    steps: list[dict] = [{"at": 0, "add": {"type": "server_error", "route": r, "probability": 0.02,
                                           "params": {"status": 503}}} for r in ROUTES]
    truth = []
    horizon = minutes * 60
    for route in ROUTES:
        t = rng.uniform(5, 20)
        while True:
            length = max(0.5, rng.choice(durations) * SCALE)
            if t + length > horizon - 10:
                break
            kind = "hang" if rng.random() < 0.1 else "overloaded"
            fid = f"{route}-{len(truth)}"
            steps.append({"at": round(t, 3), "add": {"id": fid, "type": kind, "route": route}})
            steps.append({"at": round(t + length, 3), "remove": fid})
            truth.append((route, t, t + length))
            t += length + max(INTERVAL, rng.choice(gaps) * SCALE)
    return {"steps": steps}, truth


POLICIES = {
    "airisk": ("airisk (defaults, compressed)", "{confirm_after: [50ms, 50ms, 100ms, 100ms], hedge_after: 250ms}"),
    "alone": ("airisk, no sibling probes", "{confirm_after: [50ms, 50ms, 100ms, 100ms], hedge_after: 250ms, "
                                           "probe_siblings: false}"),
    "baseline": ("baseline (3 fails, no confirm)", "{failure_threshold: 3, confirm_after: [], probe_siblings: false}"),
}


def route_of(target: str) -> str:
    return target.split("-")[0]


def config(url: str, policy: str, models: int):
    detection = f"detection: {POLICIES[policy][1]}"
    targets = "".join(f"  - {{name: {r}-{m}, provider: {r}, model: m{m}, "
                      f"base_url: {url}{get_provider(r).emulator_prefix}}}\n" for r in ROUTES for m in range(models))
    return parse_config(f"defaults: {{interval: {INTERVAL:g}s, deadlines: {{connect: 1s, first_token: 1s, "
                        f"total: 3s, stall: 1s}}}}\n{detection}\ntargets:\n{targets}", environ={})


def score(changes: list[tuple[str, Status, datetime, datetime]], truth, t0: datetime, models: int) -> dict:
    """Per target and outage of its route: time to its first DOWN, or missed."""
    def sec(when: datetime) -> float:
        return (when - t0).total_seconds()

    downs = [(target, sec(at), sec(since)) for target, to, at, since in changes if to is Status.DOWN]
    ttd, missed = [], 0
    for route, start, end in truth:
        for target in (f"{route}-{m}" for m in range(models)):
            found = [at for t, at, _ in downs if t == target and start <= at <= end + 2 * INTERVAL]
            if found:
                ttd.append((min(found) - start) / INTERVAL)
            elif end - start >= 2 * INTERVAL:
                missed += 1
    false = sum(1 for target, _, since in downs
                if not any(r == route_of(target) and s - INTERVAL <= since <= e + INTERVAL for r, s, e in truth))
    long_ = [r for r in truth if r[2] - r[1] >= 2 * INTERVAL]
    return {"ttd": ttd, "missed": missed, "false": false, "outages": len(truth), "long": len(long_)}


async def watch(service: MonitorService, changes: list, stop: asyncio.Event) -> None:
    original = service._apply

    def recording(batch):
        changes.extend((h.target.name, h.transition.to, h.transition.at, h.transition.since) for h in batch)
        return original(batch)

    service._apply = recording
    await service.run(stop)


async def main(args: argparse.Namespace) -> None:
    with emulator_process(free_port()) as url:
        async with httpx.AsyncClient() as c:
            await c.put(f"{url}/_airisk/profiles/*", json={"ttft_ms": 30, "token_gap_ms": 3, "tokens": 6})
        script, truth = timeline(args.seed, args.minutes)
        with tempfile.TemporaryDirectory() as home:
            policies = [p for p in POLICIES if p != "alone" or args.models > 1]
            runs = {name: ([], MonitorService(config=config(url, name, args.models), engine=make_engine(
                f"sqlite:///{home}/{name}.db"), status_interval=3600, seed=args.seed)) for name in policies}
            stop = asyncio.Event()
            tasks = [asyncio.create_task(watch(s, changes, stop)) for changes, s in runs.values()]
            for _, s in runs.values():
                await s.started.wait()
            async with httpx.AsyncClient() as c:
                t0 = datetime.now(UTC)
                (await c.post(f"{url}/_airisk/timeline", json=script)).raise_for_status()
            print(f"replaying {len(truth)} outages on {len(ROUTES)} routes x {args.models} model(s) "
                  f"for {args.minutes:g} min "
                  f"(interval {INTERVAL:g} s stands for 60 s; seed {args.seed})", flush=True)
            began = time.monotonic()
            await asyncio.sleep(args.minutes * 60)
            stop.set()
            await asyncio.gather(*tasks)
            wall = time.monotonic() - began
        print(f"{'policy':<34}{'outages':>8}{'>=2 iv':>8}{'median':>8}{'p95':>8}{'missed':>8}{'false':>7}")
        for name, (changes, _) in runs.items():
            r = score(changes, truth, t0 - timedelta(seconds=0), args.models)
            label = POLICIES[name][0]
            med = statistics.median(r["ttd"]) if r["ttd"] else float("nan")
            p95 = pct(r["ttd"], 95) if r["ttd"] else float("nan")
            print(f"{label:<34}{r['outages']:>8}{r['long']:>8}{med:>8.2f}{p95:>8.2f}{r['missed']:>8}{r['false']:>7}")
        print(f"({wall:.0f} s of real time; times to detect are in probe intervals)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models", type=int, default=1, help="targets per route (models on one endpoint)")
    import uvloop

    uvloop.run(main(parser.parse_args()))
