"""The bundled local model (Gemma 3 270M Q4_K_M on llama.cpp) as airisk serves and probes it.

Prints, in one run:
1. cold start: `LocalModelServer.start()` to the first probe answer, and its readiness part;
2. time to first token and tokens/s at 1 and 4 concurrent probes, with every core (airisk's
   setting) beside 1 thread (llama.cpp's default) as the baseline; and throughput by the wall
   clock (all tokens over the wall time they took) of four probes at once beside the same four
   one after another, interleaved round by round so both meet the same machine load: the
   server answers one request at a time, so four in flight queue rather than run in parallel
   (a mean per-request time would count each one's queueing as if it were parallel work);
3. server memory (RSS idle, after the runs, and peak);
4. the probe's own measurement overhead (against the one-thread server, leaving a core free
   for the clients), on identical requests (fresh nonce each, so no
   prompt cache): the probe's time to response headers beside curl's
   ``%{time_starttransfer}``, and the probe's time to first token beside curl's first
   received body bytes from ``--trace-time``; goal: within 2 ms.

Usage: .venv/bin/python bench/local_model.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.localmodel import LocalModelServer, default_model_path  # noqa: E402
from probes import Target, make_client, probe  # noqa: E402
from probes.canary import completion, new_nonce  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def probes_at(server: LocalModelServer, concurrency: int, rounds: int) -> tuple[list, float]:
    """``rounds`` batches of ``concurrency`` probes at once; the results and the batches' wall time (s)."""
    target = Target.from_provider("local", base_url=f"{server.url}/v1", max_tokens=32)
    results = []
    wall = 0.0
    async with make_client() as client:
        for _ in range(rounds):
            began = time.perf_counter()
            batch = await asyncio.gather(*(probe(target, client=client) for _ in range(concurrency)))
            wall += time.perf_counter() - began
            results.extend(batch)
    return results, wall


def wall_rate(results: list, wall: float) -> float:
    """Tokens per second of wall clock: every token of the batches over the time they took."""
    return sum(r.output_tokens for r in results) / wall


async def alone_and_together(server: LocalModelServer, rounds: int) -> tuple[list, float, list, float]:
    """Per round, four probes one after another and four at once (which first alternates, so a
    machine whose load drifts weighs on both alike); the results and wall time of each kind."""
    one, four, one_wall, four_wall = [], [], 0.0, 0.0
    for i in range(rounds):
        for kind in (("alone", "together") if i % 2 == 0 else ("together", "alone")):
            if kind == "alone":
                for _ in range(4):
                    results, wall = await probes_at(server, 1, 1)
                    one += results
                    one_wall += wall
            else:
                results, wall = await probes_at(server, 4, 1)
                four += results
                four_wall += wall
    return one, one_wall, four, four_wall


_STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{6}) ")


def _seconds(line: str) -> float | None:
    m = _STAMP.match(line)
    if not m:
        return None
    h, mi, s, us = (int(g) for g in m.groups())
    return h * 3600 + mi * 60 + s + us / 1e6


def curl_once(url: str, prompt: str, max_tokens: int) -> tuple[float, float]:
    """curl's time_starttransfer, and its first received body bytes (from --trace-time), in ms."""
    body = json.dumps({"model": "gemma-3-270m", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})
    out = subprocess.run(
        ["curl", "-sN", "--trace-ascii", "-", "--trace-time", "-o", "/dev/null",
         "-w", "STARTTRANSFER %{time_starttransfer}\n",
         "-H", "content-type: application/json", "-d", body, f"{url}/v1/completions"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    start = next(_seconds(line) for line in out if "== Info:" in line and _seconds(line) is not None)
    first_data = None
    for i, line in enumerate(out):
        if "<= Recv data" in line and '"text"' in "".join(out[i:i + 6]):
            first_data = _seconds(line)
            break
    starttransfer = float(out[-1].split()[-1]) * 1000
    return starttransfer, (first_data - start) * 1000 if first_data is not None else float("nan")


async def overhead(server: LocalModelServer, runs: int) -> dict[str, list[float]]:
    target = Target.from_provider("local", base_url=f"{server.url}/v1", max_tokens=8)
    data: dict[str, list[float]] = {"curl_start": [], "curl_first": [], "probe_headers": [], "probe_first": []}
    async with make_client() as client:
        for run in range(runs):
            canary = completion()  # the same question for both, each with its own nonce
            other = canary.prompt.replace(canary.nonce, new_nonce())

            async def by_curl(other: str = other) -> None:
                st, first = await asyncio.to_thread(curl_once, server.url, other, 8)
                data["curl_start"].append(st)
                data["curl_first"].append(first)

            async def by_probe(canary=canary) -> None:
                nonlocal client
                await client.aclose()  # a new connection each time, like curl's
                client = make_client()
                result = await probe(target, client=client, canary=canary)
                data["probe_headers"].append(result.ttfb_ms)
                data["probe_first"].append(result.ttft_ms)

            for step in ((by_curl, by_probe) if run % 2 else (by_probe, by_curl)):
                await step()
    return data


def summary(label: str, results: list) -> str:
    """TTFT and decode rate of the probes that answered; the others counted by error kind (a loaded
    machine can keep a queued probe past its first-token deadline: that is a figure, not a crash)."""
    ttft = [r.ttft_ms for r in results if r.ok]
    rate = [r.tokens_per_s for r in results if r.ok and r.tokens_per_s]
    failed = Counter(str(r.error_kind) for r in results if not r.ok)
    tail = f"   failed {sum(failed.values())}: " + ", ".join(f"{k} {v}" for k, v in failed.items()) if failed else ""
    if not ttft:
        return f"{label:<34} no probe answered{tail}"
    p95 = sorted(ttft)[int(0.95 * (len(ttft) - 1))]
    return (f"{label:<34} TTFT p50 {statistics.median(ttft):7.1f} ms  p95 {p95:7.1f} ms"
            f"   tokens/s p50 {statistics.median(rate) if rate else float('nan'):5.1f}{tail}")


async def main(runs: int) -> None:
    model = default_model_path()
    print(f"model {model.name}, {os.cpu_count()} cores, {datetime.now():%Y-%m-%d %H:%M}\n")
    cores = os.cpu_count() or 1
    for threads, label in ((cores, f"airisk: {cores} threads"), (1, "llama.cpp default: 1 thread")):
        server = LocalModelServer(model=model, port=free_port(), threads=threads)
        began = time.perf_counter()
        server.start()
        ready = server.wait_ready()
        first, _ = await probes_at(server, 1, 1)
        cold = time.perf_counter() - began
        idle_rss, _ = rss_kib(server.pid)
        print(f"[{label}]")
        print(f"1. cold start to first answer {cold:5.2f} s (server ready after {ready:5.2f} s; "
              f"first TTFT {first[0].ttft_ms or float('nan'):.0f} ms)")
        one, one_wall, four, four_wall = await alone_and_together(server, max(1, runs // 4))
        print("2. " + summary("1 concurrent", one))
        print("   " + summary("4 concurrent", four))
        alone, together = wall_rate(one, one_wall), wall_rate(four, four_wall)
        print(f"   wall-clock throughput, interleaved: 1 at a time {alone:.1f} tokens/s "
              f"({sum(r.output_tokens for r in one)} tokens in {one_wall:.1f} s); 4 concurrent {together:.1f} tokens/s "
              f"({sum(r.output_tokens for r in four)} tokens in {four_wall:.1f} s): {together / alone:.2f}x "
              "(the server answers one request at a time)")
        rss, peak = rss_kib(server.pid)
        print(f"3. server RSS idle {idle_rss / 1024:.0f} MiB, after runs {rss / 1024:.0f} MiB, "
              f"peak {peak / 1024:.0f} MiB")
        if threads == 1:
            # Measured against the one-thread server so that the model does not take the core
            # the clients run on: this section is about the probe's overhead, not CPU contention.
            data = await overhead(server, runs)
            med = {k: statistics.median(v) for k, v in data.items()}
            print("4. measurement overhead, same requests, new connection each (p50):")
            for curl_key, probe_key, what in (("curl_start", "probe_headers", "time_starttransfer / headers"),
                                              ("curl_first", "probe_first", "first body bytes / TTFT")):
                print(f"   {what:<30} curl {med[curl_key]:7.2f} ms   probe {med[probe_key]:7.2f} ms   "
                      f"diff {med[probe_key] - med[curl_key]:+.2f} ms   (goal: within 2 ms)")
        server.stop()
        print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
