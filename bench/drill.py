"""How much load does the drill driver put through the fault proxy, and how fast does a fault bite?

Two figures, each beside its baseline measured in the same run:

1. Requests/s the drill's load generator (Locust, `chaos.drill.loadgen`, as `airisk drill run`
   starts it) sustains through `airisk proxy` to the emulator (answering at once), with one
   Locust process and with a master and two workers, beside the same load generator sent
   straight to the emulator. Everything shares this machine's two cores, so the figures are
   "what a drill can do here", not what the proxy alone can do (see bench/proxy_overhead.py).
2. The delay from a fault's start (the drill runner putting it in force at the proxy) to the
   end of the first product request that fails because of it, through the storefront example:
   for a fault that answers at once (OpenAI overloaded) beside the mean gap between two
   requests of that feature (a request must first be sent: half a gap on average), and for a
   hang beside the product's own timeout: as the drill file sets it (the storefront's
   ``STOREFRONT_AI_TIMEOUT``) and as measured in the same run (the median time the product took
   to fail a request during the hang, i.e. its timeout on this machine as loaded). Goal: under
   100 ms plus that baseline. Five fault phases per run, each one a sample.

Usage: .venv/bin/python bench/drill.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.probe_accuracy import free_port  # noqa: E402
from chaos.drill.runner import Options, run_drill, running_stack, start_emulator, start_proxy  # noqa: E402
from chaos.drill.spec import DrillSpec  # noqa: E402

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
STOREFRONT = ROOT / "examples" / "storefront" / "drills" / "openai-outage.yaml"


def _spec(data: dict) -> DrillSpec:
    return DrillSpec.model_validate(data)


def throughput(seconds: float, workers: int, product: str, proxy: str, path: str) -> float:
    """Requests/s of the drill's load generator against ``product`` (the proxy, or the emulator)."""
    data = {
        "name": "throughput",
        "product": {"base_url": product},  # the "product" is the proxy or the emulator: the driver's ceiling
        "proxy": {"url": proxy, "start": False},
        "features": {"chat": {"request": {"method": "POST", "path": path, "json": CHAT},
                              "expect": {"status": 200, "field": "choices"}}},
        "load": {"users": 32, "spawn_rate": 1000, "wait": 0, "workers": workers},
        # a drill needs a fault; this one touches a route the load does not use
        "phases": [{"name": "warm", "duration": 1.5},
                   {"name": "measure", "duration": seconds,
                    "faults": [{"type": "first_token_delay", "route": "groq", "params": {"delay_ms": 1}}]}],
    }
    result, _ = run_drill(_spec(data))
    stats = result.features[0].phases["measure"]
    phase = result.phases[1]
    return stats.requests / (phase.end - phase.start)


@contextlib.contextmanager
def emulator_and_proxy():
    with running_stack() as stack:
        emulator = start_emulator(stack, ttft_ms=0, gap_ms=0)
        yield emulator, start_proxy(stack, port=free_port(), emulator=emulator)


def product_timeout_ms(data: dict) -> float:
    """The storefront's timeout per AI call as the drill file starts it (its default: 5 s)."""
    return float(data["product"]["start"].get("env", {}).get("STOREFRONT_AI_TIMEOUT", 5)) * 1000


def fault_delays(kind: str) -> tuple[list[float], list[float], float, list[float], float]:
    """Per fault phase: ms from the fault's start to the end of the first failed description request,
    and of that the wait for the product to send one; the mean gap (ms) between description requests
    outside the faults; the latencies (ms) of the requests that failed during the faults; and the
    product's timeout (ms) as the drill file sets it."""
    data = yaml.safe_load(STOREFRONT.read_text())
    port = free_port()
    data["product"]["base_url"] = f"http://127.0.0.1:{port}"
    data["product"]["start"]["command"][-1] = str(port)
    data["product"]["start"]["cwd"] = str(ROOT)  # the file is copied elsewhere; `examples` lives here
    data["proxy"]["url"] = f"http://127.0.0.1:{free_port()}"
    fault = {"route": "openai", "type": kind} | ({"params": {"seconds": 30}} if kind == "hang" else {})
    data["phases"] = [{"name": "base", "duration": 2}]
    for i in range(5):
        data["phases"] += [{"name": f"down{i}", "duration": 3, "faults": [fault]}, {"name": f"up{i}", "duration": 2}]
    data["guards"] = {"min_success_rate": 0, "for": "5s", "max_duration": "5m"}
    # Only the feature measured, so a request of it goes out every few ms: the figure is how fast a
    # fault bites, not how often the product happens to call OpenAI.
    data["features"] = {"description": {**data["features"]["description"], "outcome": "may_fail"}}
    raw: list[dict] = []
    result, _ = run_drill(_spec(data), Options(on_records=raw.extend, base_dir=STOREFRONT.parent))  # cases: ../evals
    delays, waits = [], []
    records = sorted((r for r in raw if r["f"] == "description"), key=lambda r: r["t"])
    for phase in result.phases:
        if phase.faulted:
            failed = [r for r in records
                      if not r["ok"] and phase.start <= r["t"] + r["ms"] / 1000 and r["t"] < phase.end]
            if failed:
                first = min(failed, key=lambda r: r["t"] + r["ms"] / 1000)
                delays.append((first["t"] + first["ms"] / 1000 - phase.start) * 1000)
                waits.append(max(0.0, first["t"] - phase.start) * 1000)
    base = [r["t"] for r in records if r["t"] < result.phases[1].start]
    gap = statistics.mean(b - a for a, b in itertools.pairwise(base)) * 1000
    failed_ms = [r["ms"] for r in records if not r["ok"]
                 and any(p.faulted and p.start <= r["t"] and r["t"] + r["ms"] / 1000 <= p.end for p in result.phases)]
    return delays, waits, gap, failed_ms, product_timeout_ms(data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print("1. requests/s the drill driver sustains (32 users, no wait; emulator answers at once; 2 cores shared)")
    with emulator_and_proxy() as (emulator, proxy):
        straight = throughput(args.seconds, 0, emulator, proxy, "/openai/v1/chat/completions")
        print(f"   load generator straight to the emulator (baseline)      {straight:8.0f} req/s   1.00x")
        for workers in (0, 2):
            rps = throughput(args.seconds, workers, proxy, proxy, "/openai/chat/completions")
            label = "1 Locust process" if workers == 0 else f"1 master + {workers} workers"
            print(f"   through the fault proxy, {label:<28}  {rps:8.0f} req/s   {rps / straight:.2f}x")
    print("\n2. fault start -> end of the first product request it fails (storefront description, 5 fault phases)")
    for kind, label in (("overloaded", "overloaded (answers at once)"), ("hang", "hang")):
        delays, waits, gap, failed_ms, timeout_ms = fault_delays(kind)
        if kind == "overloaded":
            baseline, goal = f"mean gap between requests {gap:.0f} ms", 100.0
        else:
            # The product's timeout as it really took in this run: what a hang must cost at least.
            measured = statistics.median(failed_ms) if failed_ms else float("nan")
            baseline = (f"product timeout {timeout_ms:.0f} ms in the drill file, {measured:.0f} ms measured "
                        f"(median of {len(failed_ms)} requests failed by the hang)")
            goal = 100 + measured
        worst = max(delays) if delays else float("inf")
        print(f"   {label:<30} median {statistics.median(delays):7.1f} ms, max {worst:7.1f} ms "
              f"(n={len(delays)}), of which waiting for the product to send one: median "
              f"{statistics.median(waits):5.1f} ms; baseline: {baseline}; goal < {goal:.0f} ms: "
              f"{'met' if worst < goal else 'NOT MET'}")


if __name__ == "__main__":
    main()
