"""Soak: `airisk monitor` with 200 targets against the emulator, faults switching on and off.

Runs the real processes: `airisk emulate` and `airisk monitor` (SQLite under a temporary
`AIRISK_HOME`), 200 targets spread over every emulated provider, each probed every
``--interval`` seconds. A fault switcher adds a leased fault on a random route every
``--switch`` seconds (overloads, 5xx, rate limits, hangs, cut and stalled streams, slow
tokens) and lets it lapse, so the monitor's detection, confirmations, incidents and alert
queueing all run the whole time.

Prints, in one run:
- the monitor's RSS and open file descriptors, sampled from /proc every 10 s: the median of a
  window right after the warm-up (``--warmup``, default 5 min) against the median of the same
  window at the end, and the growth (goal: under 5%);
- file descriptors judged the way a leak would show. The count of all fds follows sockets in
  flight (a hang fault holds many probes at once, the keep-alive pool keeps what they opened for
  30 s), which vary with the fault mix of the moment and the machine's load, so it is printed but
  not judged. Judged instead: (1) fds that are not sockets (files, pipes, the event loop's own),
  median growth under 5%; (2) sockets in CLOSE_WAIT, the state of a connection the emulator
  closed and the monitor never did (a leaked connection ends there), none in the quiet end window;
  (3) the socket count at rest: twice, right after the warm-up and at the end, every fault is
  removed and none is added for ``--quiet`` seconds (default 90: past the soak's 20 s probe deadline plus the
  pool's 30 s keep-alive expiry), and the sockets held in the last 20 s of each quiet window are
  compared (goal: at most 5% or 2 sockets more at the end);
- "no task lost": every target's last stored probe is within three intervals of the end
  (a target whose scheduled job died stops producing rows);
- "every result stored": probes the monitor counted on ``/metrics`` (airisk_probes_total,
  scraped just before stopping it) against rows in its database after it stopped (goal: rows
  >= counted; a probe that finishes between the scrape and the stop adds a row, never removes one);
- whether the monitor was still running when told to stop, and its exit code.

Usage: .venv/bin/python bench/soak.py [--minutes 30] [--targets 200] [--interval 10] [--quiet 90]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from probes.catalog import CATALOG  # noqa: E402

AIRISK = str(Path(sys.executable).with_name("airisk"))
PROVIDERS = ("openai", "anthropic", "gemini", "cohere", "ollama", "mistral", "groq", "deepseek")
# Faults that exercise every path of detection: stated errors, rate limits, hangs, cut and slow streams.
FAULTS = (
    {"type": "overloaded"}, {"type": "server_error"}, {"type": "rate_limited"},
    {"type": "hang"}, {"type": "stream_cut"}, {"type": "stream_stall"}, {"type": "slow_tokens"},
    {"type": "connection_reset"}, {"type": "first_token_delay"},
)
NO_KEY = "AIRISK_SOAK_NO_KEY"  # unset: emulated targets send no key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {proc.returncode} while starting")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url}: not answering after {seconds:g}s")


def config_text(emulator: str, n: int, interval: float) -> str:
    deadlines = "{connect: 5s, first_token: 8s, total: 20s, stall: 5s}"
    lines = [f"defaults: {{interval: {interval:g}s, deadlines: {deadlines}}}", "targets:"]
    for i in range(n):
        provider = PROVIDERS[i % len(PROVIDERS)]
        base = emulator + CATALOG[provider].emulator_prefix
        lines.append(f"  - {{name: t{i:03d}-{provider}, provider: {provider}, base_url: '{base}', key_env: {NO_KEY}}}")
    return "\n".join(lines) + "\n"


CLOSE_WAIT = "08"  # the state column of /proc/net/tcp (include/net/tcp_states.h)


def close_wait_inodes() -> set[str]:
    """Inodes of every TCP socket on the machine in CLOSE_WAIT."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == CLOSE_WAIT:
                inodes.add(cols[9])
    return inodes


def sample(pid: int) -> tuple[int, int, int, int, int]:
    """(RSS in KiB, open fds, sockets, fds that are not sockets, sockets in CLOSE_WAIT) of ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    sockets: list[str] = []
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed between the listing and the read
            continue
        total += 1
        if link.startswith("socket:["):
            sockets.append(link[8:-1])
    waiting = close_wait_inodes()
    return rss, total, len(sockets), total - len(sockets), sum(s in waiting for s in sockets)


def fault_types(emulator: str) -> set[str]:
    data = httpx.get(f"{emulator}/_airisk/fault-types", timeout=5).json()
    items = data.get("fault_types", data) if isinstance(data, dict) else data
    if isinstance(items, dict):
        return set(items)
    return {item["type"] if isinstance(item, dict) else str(item) for item in items}


def probes_counted(metrics_url: str) -> int:
    text = httpx.get(metrics_url, timeout=5).text
    return int(sum(float(m.group(1)) for m in re.finditer(r"^airisk_probes_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)))


def growth(base: float, end: float) -> str:
    return f"{(end - base) / base * 100:+.1f}%" if base else "n/a"


def main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    home = Path(tempfile.mkdtemp(prefix="airisk-soak-"))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["AIRISK_HOME"] = str(home)
    env.pop("AIRISK_DATABASE_URL", None)
    eport, mport = free_port(), free_port()
    emulator = f"http://127.0.0.1:{eport}"
    emu = subprocess.Popen([AIRISK, "emulate", "--port", str(eport), "--ttft-ms", "150", "--token-gap-ms", "15"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    monitor = None
    try:
        wait_http(f"{emulator}/_airisk/health", emu, 30)
        known = fault_types(emulator)
        faults = [f for f in FAULTS if f["type"] in known]
        missing = sorted({f["type"] for f in FAULTS} - known)
        cfg = home / "airisk.yaml"
        cfg.write_text(config_text(emulator, args.targets, args.interval))
        log = (home / "monitor.log").open("wb")
        monitor = subprocess.Popen([AIRISK, "monitor", "--config", str(cfg), "--metrics-port", str(mport)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
        metrics_url = f"http://127.0.0.1:{mport}/metrics"
        wait_http(metrics_url, monitor, 60)
        print(f"soak: {args.targets} targets every {args.interval:g}s for {args.minutes:g} min, "
              f"warm-up {args.warmup:g} min; faults switched every {args.switch:g}s: "
              f"{', '.join(f['type'] for f in faults)}" + (f" (not in catalogue: {', '.join(missing)})" if missing
                                                          else ""), flush=True)
        start = time.monotonic()
        end = start + args.minutes * 60
        # The two quiet windows: no fault for args.quiet seconds, right after the warm-up and at the end.
        quiet = [(start + args.warmup * 60, start + args.warmup * 60 + args.quiet), (end - args.quiet, end)]
        samples: list[tuple[float, int, int, int, int, int]] = []
        next_sample = next_switch = start
        added = 0
        cleared = [False, False]
        while (now := time.monotonic()) < end:
            if monitor.poll() is not None:
                print(f"the monitor exited with {monitor.returncode} after {(now - start) / 60:.1f} min")
                return 1
            if now >= next_sample:
                rss, fds, socks, other, waiting = sample(monitor.pid)
                samples.append((now - start, rss, fds, socks, other, waiting))
                if len(samples) % 30 == 1:
                    print(f"  {(now - start) / 60:5.1f} min  RSS {rss / 1024:7.1f} MiB  fds {fds} "
                          f"(sockets {socks}, CLOSE_WAIT {waiting}, other {other})", flush=True)
                next_sample += 10
            in_quiet = [a <= now < b for a, b in quiet]
            for i, inside in enumerate(in_quiet):
                if inside and not cleared[i]:
                    httpx.delete(f"{emulator}/_airisk/faults", timeout=5)
                    cleared[i] = True
            if any(in_quiet):
                next_switch = max(next_switch, now)
            elif now >= next_switch and faults:
                fault = dict(rng.choice(faults))
                route = rng.choice(PROVIDERS)
                lease = rng.uniform(args.switch * 0.5, args.switch * 1.5)
                body = {**fault, "route": route, "for_s": round(lease, 1), "probability": rng.choice((0.5, 1.0))}
                try:
                    r = httpx.post(f"{emulator}/_airisk/faults", json=body, timeout=5)
                    added += r.status_code < 300
                except httpx.HTTPError as exc:
                    print(f"  fault switch failed: {exc}")
                next_switch += args.switch
            time.sleep(0.5)
        counted = probes_counted(metrics_url)
        ended = datetime.now(UTC)
        alive = monitor.poll() is None
        monitor.send_signal(signal.SIGTERM)
        code = monitor.wait(60)
        log.close()
    finally:
        for proc in (monitor, emu):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)

    db = sqlite3.connect(next(home.rglob("*.db")))
    stored = db.execute("SELECT count(*) FROM probe_result").fetchone()[0]
    last = dict(db.execute("SELECT target, max(at) FROM probe_result GROUP BY target").fetchall())
    db.close()
    stale = []
    for i in range(args.targets):
        name = f"t{i:03d}-{PROVIDERS[i % len(PROVIDERS)]}"
        at = last.get(name)
        when = datetime.fromisoformat(at).replace(tzinfo=UTC) if at else None
        if when is None or (ended - when).total_seconds() > 3 * args.interval + 20:
            stale.append(name)

    # Connections in flight (held by hang faults, opened for confirmations) move the fd count and
    # RSS from one sample to the next; growth compares the median of a window right after the
    # warm-up with the median of the same-length window at the end.
    span = min(300.0, (args.minutes - args.warmup) * 60 / 3)
    rest = [[s for s in samples if b - 20 - start <= s[0] < b - start] for a, b in quiet]
    first = [s for s in samples if args.warmup * 60 <= s[0] < args.warmup * 60 + span] or samples[:1]
    final = [s for s in samples if s[0] >= samples[-1][0] - span] or samples[-1:]
    after = [s for s in samples if s[0] >= args.warmup * 60] or samples
    print(f"\nresults ({len(samples)} samples every 10 s; medians of the {span / 60:.1f} min after the "
          f"{args.warmup:g} min warm-up and of the last {span / 60:.1f} min):")
    grew = []
    for label, i, unit, scale, judged in (("RSS (median)", 1, " MiB", 1024, True),
                                          ("open fds, all (median; not judged: sockets in flight)", 2, "", 1, False),
                                          ("fds that are not sockets (median)", 4, "", 1, True)):
        a = statistics.median(s[i] for s in first) / scale
        b = statistics.median(s[i] for s in final) / scale
        top = max(s[i] for s in after) / scale
        if judged:
            grew.append((b - a) / a >= 0.05 if a else b > 0)
        print(f"  {label}: {a:.1f}{unit} -> {b:.1f}{unit} (max after warm-up {top:.1f}{unit}): "
              f"growth {growth(a, b)}" + (" (goal under 5%)" if judged else ""))
    at_rest = [statistics.median(s[3] for s in window) if window else None for window in rest]
    if None in at_rest:
        print("  sockets at rest: a quiet window has no sample (run longer than warm-up + 2 quiet windows)")
        grew.append(True)
    else:
        a, b = at_rest
        grew.append(b > max(a * 1.05, a + 2))
        print(f"  sockets at rest (median of the last 20 s of {args.quiet:g} s without faults): {a:g} after the "
              f"warm-up -> {b:g} at the end: growth {growth(a, b)} (goal: at most 5% or 2 sockets more)")
    end_wait = max((s[5] for s in rest[1]), default=0)
    most_wait = max((s[5] for s in after), default=0)
    grew.append(end_wait > 0)
    print(f"  sockets in CLOSE_WAIT (closed by the emulator, never by the monitor): {end_wait} at rest at the end "
          f"(goal 0), at most {most_wait} in any sample after the warm-up")
    print(f"  faults switched on: {added}")
    print(f"  targets whose last probe is older than 3 intervals at the end: {len(stale)} of {args.targets} (goal 0)"
          + (f": {', '.join(stale[:10])}" if stale else ""))
    print(f"  probes counted on /metrics before stopping: {counted}; rows stored after stopping: {stored} "
          f"({'every result stored' if stored >= counted else f'{counted - stored} MISSING'})")
    print(f"  monitor alive until told to stop: {alive}; exit code after SIGTERM: {code}")
    print(f"  data left in {home}")
    ok = alive and code == 0 and not stale and stored >= counted and not any(grew)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--switch", type=float, default=20, help="seconds between fault switches")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quiet", type=float, default=90,
                        help="seconds without faults after the warm-up and at the end, for the sockets at rest")
    sys.exit(main(parser.parse_args()))
