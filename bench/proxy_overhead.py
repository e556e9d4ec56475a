"""What does an HTTP fault proxy cost? airisk's proxy beside a naive pass-through and existing fault proxies.

One run, one upstream: the airisk emulator (`airisk emulate`, OpenAI Chat Completions) on
loopback. Every request goes to it either directly or through one proxy with no fault active:

- direct: the baseline every figure is compared to;
- airisk: `airisk proxy --emulator URL` (`/openai/chat/completions` forwards to the emulator);
- airisk, --no-relay: the same with every request on the ASGI course, none relayed by callbacks
  (`chaos.proxyfast`): the proxy as it was before the relay, measured in the same run;
- raw asyncio+httptools (floor): bench/raw_proxy.py, the bare design airisk's goals come from
  (shared/PERF_NOTES.md: a raw `asyncio.Protocol` on uvloop, `httptools` parsers, bytes
  forwarded as they arrive, a LIFO pool of idle upstream connections), path unchanged
  (`/openai/v1/chat/completions`, as direct): what that design costs on this machine, in the
  same run, so each goal line also shows whether the bare design meets it here;
- naive: bench/naive_proxy.py, Starlette + one shared httpx.AsyncClient streaming `aiter_raw()`
  back under uvicorn, the straightforward way to write a pass-through (a baseline, not a rival);
- agentbreak (PyPI, an LLM fault proxy), `llm.mode: proxy` with `upstream_url` set to the
  emulator's `/openai` (it appends `/v1/chat/completions`) and an empty scenario list;
- toxy (npm, a Node HTTP fault proxy), bench/toxy_proxy.js: `.forward(emulator)` for every
  path, no poison.
Each runs as its authors ship it: agentbreak opens a new httpx client (and connection) per
request; toxy (node-http-proxy without an agent) a new upstream connection per request, and
cannot be given a keep-alive agent (see bench/toxy_proxy.js).
agentbreak and toxy are installed on first run outside the project's venv, into `.bench/`
(`python3 -m venv .bench/agentbreak-venv` + pip; `npm install --prefix .bench/node`).

CPU placement on the 2 cores: the emulator, the load generator (wrk) and this script's
streaming client share CPU 1 (`sched_setaffinity`); each proxy runs alone on CPU 0. Every
row puts the same work on CPU 1, so a proxy that keeps up runs at ~1.00x direct and one that
cannot shows by how much. The machine is shared and noisy: read the ratios taken in one run,
not the absolute times (direct is measured again at the end of part 1 to show the drift).

1. non-streaming POST (emulator answering at once: TTFT 0, no token gaps), `wrk -t1 -c16
   -d8s --latency` after a 1 s warm-up, each proxy twice (its rows in one order, then in the
   reverse one: in one fixed order the row run first after direct read 2-6% below the same
   proxy run later): req/s and its ratio to direct, p50/p99 latency, and the proxy's CPU per
   request (user + system of its process tree from /proc/PID/stat);
2. streaming (emulator TTFT 50 ms, 10 ms between 12 tokens): 30 rounds, each one streamed
   request per row (in a new order each round, 20 ms apart), sequential, from a raw-socket
   HTTP/1.1 client with one kept-alive connection per row (stamps after each recv).
   Time to first byte (headers leave the emulator with the first token) and total, p50/p99,
   and the time added per request: its time beyond the emulator's own for it (first token and
   end as the emulator logged them, joined by a nonce in the prompt; this takes out the
   emulator's lateness, which reaches a few ms since uvloop's clock ticks in whole ms) minus
   the same for direct's request of that round; p50 and p99 of those paired differences (with
   30 rounds the p99 is the worst round). A second direct row shows the method's noise floor;
3. a 100 ms `first_token_delay` fault through airisk's proxy: 30 rounds of one stream without
   and one with the fault (added before, removed after, through its control API): the fault
   must add ~100 ms to first byte and to total (once per request), nothing after the first
   byte, and leave the gaps between SSE events alone (median gap ~10 ms: a fault per chunk
   shows as ~110 ms, chunks held back and then released together as ~0).
Goals (from issue 16, the proxy as fast as the wire): pass-through at least 0.85x direct's
req/s; added first byte p50 <= 0.3 ms and p99 <= 1 ms over direct; at most 80 µs of proxy CPU
per request; the latency fault applied once per request, not once per chunk. A proxy that
cannot carry this traffic gets the reason in its row instead of a number. Under each goal's line
for airisk, the floor row's figure for the same goal: whether the bare design meets it here.

airisk's row runs this checkout's code (``python -c 'from airisk.cli import main'`` from the
repository's root, with the running interpreter), not whatever an installed ``airisk`` script
imports: a worktree measures its own proxy.

Usage: .venv/bin/python bench/proxy_overhead.py [--quick] [--rounds 30] [--seconds 8]
Needs wrk (`apt-get install -y wrk`) for part 1, node and npm for toxy.
With ``--capture``, instead: the proxy's request rate with and without ``airisk proxy --capture``, in one
run (bench/capture_overhead.py; ``--rounds`` then counts rounds over its rows, default 10, and
``--seconds`` defaults to 3).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.probe_accuracy import emulator_process, free_port, pct  # noqa: E402

BENCH = ROOT / ".bench"
LOGS = BENCH / "logs"
AGENTBREAK_SPEC = "agentbreak>=0.4,<0.5"
TOXY_SPEC = "toxy@0.3.16"
PROXY_CPU, LOAD_CPU = 0, 1
WRK_THREADS, WRK_CONNECTIONS = 1, 16
STREAM_TTFT_MS, STREAM_GAP_MS, TOKENS = 50.0, 10.0, 12
FAULT_MS = 100.0
PAUSE_S = 0.02  # quiet time before each stream
QUESTION = "What is 2 plus 3?"
PLAIN_BODY = json.dumps({"model": "gpt-4o-mini", "max_tokens": TOKENS,
                         "messages": [{"role": "user", "content": QUESTION}]})
_NONCES = itertools.count(1)


def stream_body() -> tuple[str, str]:
    """A streaming request and its nonce: the emulator logs "[probe NONCE]" found in a prompt."""
    nonce = f"pb{next(_NONCES):06d}"
    return nonce, json.dumps({"model": "gpt-4o-mini", "max_tokens": TOKENS, "stream": True,
                              "messages": [{"role": "user", "content": f"[probe {nonce}] {QUESTION}"}]})


def _pin(cpu: int):
    return lambda: os.sched_setaffinity(0, {cpu})


@dataclass
class Row:
    name: str
    url: str = ""  # the chat completions URL, directly or through this proxy
    proc: subprocess.Popen | None = None
    problem: str = ""  # why this row has no numbers
    wrk: dict | None = None
    streams: list = field(default_factory=list)  # one Stream (or an error string) per round


# ---------------------------------------------------------------------------- setup


def ensure_agentbreak() -> tuple[Path | None, str]:
    """The agentbreak command and its version, installed on first use into .bench/agentbreak-venv."""
    venv = BENCH / "agentbreak-venv"
    exe = venv / "bin" / "agentbreak"
    if not exe.exists():
        python = shutil.which("python3") or sys.executable
        print(f"installing {AGENTBREAK_SPEC!r} into {venv.relative_to(ROOT)}: "
              f"python3 -m venv, then pip install (once) ...", flush=True)
        try:
            subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", AGENTBREAK_SPEC], check=True,
                           capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()[-1:]
            return None, f"install failed: {' '.join(detail)}"
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('agentbreak'))"],
                         capture_output=True, text=True)
    return exe, out.stdout.strip() or "?"


def ensure_toxy() -> tuple[Path | None, str]:
    """node_modules holding toxy and toxy's version, installed on first use into .bench/node."""
    if shutil.which("node") is None:
        return None, "node not found (apt-get install -y nodejs npm)"
    modules = BENCH / "node" / "node_modules"
    package = modules / "toxy" / "package.json"
    if not package.exists():
        npm = shutil.which("npm")
        if npm is None:
            return None, "npm not found (apt-get install -y npm)"
        print(f"installing {TOXY_SPEC} into .bench/node: npm install --prefix .bench/node {TOXY_SPEC} (once) ...",
              flush=True)
        done = subprocess.run([npm, "install", "--prefix", str(BENCH / "node"), "--no-audit", "--no-fund",
                               TOXY_SPEC], capture_output=True, text=True)
        if done.returncode != 0 or not package.exists():
            return None, f"npm install failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    return modules, json.loads(package.read_text())["version"]


def agentbreak_config(upstream: str, port: int) -> Path:
    """application.yaml + scenarios.yaml for a pure pass-through; returns the folder to run it in."""
    run = BENCH / "agentbreak-run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "application.yaml").write_text(
        "llm:\n  enabled: true\n  mode: proxy\n"
        f"  upstream_url: {upstream}/openai\n"  # agentbreak appends /v1/chat/completions
        "mcp:\n  enabled: false\n"
        f"serve:\n  host: 127.0.0.1\n  port: {port}\n"
        "history:\n  enabled: false\n")
    (run / "scenarios.yaml").write_text("scenarios: []\n")
    return run


def launch(stack: contextlib.ExitStack, row: Row, cmd: list[str], *, cwd: Path | None = None,
           env: dict | None = None) -> None:
    """Start a proxy on the proxy CPU (stopped when `stack` closes); wait until a request goes through it."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{row.name.split()[0]}.log"
    with log_path.open("wb") as log:
        row.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, preexec_fn=_pin(PROXY_CPU))
    stack.callback(stop, row.proc)
    row.problem = wait_ready(row, log_path)


def wait_ready(row: Row, log_path: Path) -> str:
    """'' once a non-streaming completion comes back through the row; else what went wrong."""
    deadline = time.monotonic() + 30
    refusals = 0
    last = "nothing listening"
    while time.monotonic() < deadline:
        if row.proc is not None and row.proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
            return f"exited with status {row.proc.returncode}: {' '.join(tail)[:200]} (log: {log_path})"
        try:
            r = httpx.post(row.url, content=PLAIN_BODY, headers={"content-type": "application/json"}, timeout=10)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
            continue
        if r.status_code == 200 and "choices" in r.text:
            return ""
        last = f"HTTP {r.status_code} {r.text[:200]!r}"
        refusals += 1
        if refusals >= 5:
            break
        time.sleep(0.2)
    return f"cannot proxy this upstream: POST {urlsplit(row.url).path} -> {last} (log: {log_path})"


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants (/proc/PID/stat, fields 14-15)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        with contextlib.suppress(OSError, ValueError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
    return total / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- 1. wrk

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * _UNITS[unit]


def run_wrk(url: str, seconds: float, script: Path) -> dict:
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    try:
        result = {
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
            "requests": int(re.search(r"(\d+) requests in", out)[1]),
            **{f"p{q}": _ms(v) for q, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)},
        }
    except (TypeError, AttributeError) as exc:
        raise RuntimeError(f"could not read wrk's output: {out[-300:]!r}") from exc
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m[1])
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(map(int, m.groups()))
    result["errors"] = errors
    return result


def part1(rows: list[Row], seconds: float, warmup: float) -> Row | None:
    """wrk against every row in two passes, the proxies in one order then in the reverse one (a row
    run early or late meets a different emulator: its log filling, the machine's drift), then
    direct again; a row's figures are its two passes' (req/s and p50 their mean, p99 the larger,
    CPU over both). Returns the repeated direct row."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(PLAIN_BODY)}\n'
                          'wrk.headers["Content-Type"] = "application/json"\n')
        again = Row("direct (again, at the end)", url=rows[0].url)
        passes: dict[int, list[dict]] = {}
        order = [rows[0], *rows[1:], *reversed(rows[1:]), again]
        for row in order:
            if row.problem:
                continue
            try:
                run_wrk(row.url, warmup, script)
                cpu0 = cpu_seconds(row.proc.pid) if row.proc else 0.0
                result = run_wrk(row.url, seconds, script)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                row.problem = f"wrk: {exc}"
                continue
            result["cpu_s"] = (cpu_seconds(row.proc.pid) - cpu0) if row.proc else 0.0
            passes.setdefault(id(row), []).append(result)
        for row in [*rows, again]:
            done = passes.get(id(row))
            if row.problem or not done:
                continue
            row.wrk = {"rps": statistics.mean(r["rps"] for r in done), "requests": sum(r["requests"] for r in done),
                       "p50": statistics.mean(r["p50"] for r in done), "p99": max(r["p99"] for r in done),
                       "errors": sum(r["errors"] for r in done), "passes": len(done)}
            if row.proc:
                row.wrk["cpu_us"] = sum(r["cpu_s"] for r in done) / max(1, row.wrk["requests"]) * 1e6
    return again


def print_part1(rows: list[Row], again: Row) -> None:
    if rows[0].wrk is None:
        print(f"   direct: no figure, so no ratios: {rows[0].problem}")
        return
    base = rows[0].wrk["rps"]
    print(f"   {'row':<34}{'req/s':>8}{'vs direct':>11}{'p50 ms':>9}{'p99 ms':>9}{'proxy CPU/req':>15}"
          f"{'errors':>8}")
    for row in [*rows, again]:
        if row.problem:
            print(f"   {row.name:<34}no figure: {row.problem}")
            continue
        w = row.wrk
        cpu = f"{w['cpu_us']:.0f} µs" if "cpu_us" in w else "-"
        print(f"   {row.name:<34}{w['rps']:8.0f}{w['rps'] / base:10.3f}x{w['p50']:9.2f}{w['p99']:9.2f}{cpu:>15}"
              f"{w['errors']:8d}")


# ---------------------------------------------------------------------------- 2. streams


@dataclass
class Stream:
    nonce: str
    first_byte_ms: float
    total_ms: float
    events_ms: list[float]  # when each complete SSE event had arrived
    upstream_first_ms: float | None = None  # the emulator's own time to first token, from its log
    upstream_total_ms: float | None = None

    @property
    def after_first_ms(self) -> float:
        return self.total_ms - self.first_byte_ms

    @property
    def first_over_ms(self) -> float | None:
        """First byte beyond the emulator's own TTFT for this request: the whole path's cost."""
        return None if self.upstream_first_ms is None else self.first_byte_ms - self.upstream_first_ms

    @property
    def total_over_ms(self) -> float | None:
        return None if self.upstream_total_ms is None else self.total_ms - self.upstream_total_ms

    @property
    def gaps_ms(self) -> list[float]:
        return [b - a for a, b in zip(self.events_ms, self.events_ms[1:], strict=False)] or [0.0]


class _Response:
    """Incremental HTTP/1.1 response reader: head, then a body framed by length, chunks or close."""

    def __init__(self) -> None:
        self.buf = b""
        self.status = 0
        self.framing = ""
        self.remaining = 0
        self.state = "size"
        self.keep_alive = True
        self.body = bytearray()
        self.complete = False

    def feed(self, data: bytes) -> None:
        self.buf += data
        if not self.status:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            self.buf = self.buf[end + 4:]
            self.status = int(lines[0].split()[1])
            headers = {k.strip().lower(): v.strip().lower() for k, _, v in (h.partition(":") for h in lines[1:])}
            self.keep_alive = headers.get("connection") != "close"
            if "chunked" in headers.get("transfer-encoding", ""):
                self.framing = "chunked"
            elif "content-length" in headers:
                self.framing, self.remaining = "length", int(headers["content-length"])
            else:
                self.framing, self.keep_alive = "close", False
        if self.framing == "length":
            self._take()
            self.complete = self.remaining == 0
        elif self.framing == "chunked":
            self._chunks()
        else:
            self.body += self.buf
            self.buf = b""

    def _take(self) -> None:
        take = self.buf[:self.remaining]
        self.body += take
        self.remaining -= len(take)
        self.buf = self.buf[len(take):]

    def _chunks(self) -> None:
        while not self.complete:
            if self.state == "data":
                self._take()
                if self.remaining:
                    return
                self.state = "crlf"
            elif self.state == "crlf":
                if len(self.buf) < 2:
                    return
                self.buf, self.state = self.buf[2:], "size"
            else:  # "size", or "trailer" after the last chunk: one line at a time
                eol = self.buf.find(b"\r\n")
                if eol < 0:
                    return
                line, self.buf = self.buf[:eol], self.buf[eol + 2:]
                if self.state == "trailer":
                    self.complete = not line
                elif (size := int(line.split(b";")[0], 16)) == 0:
                    self.state = "trailer"
                else:
                    self.remaining, self.state = size, "data"


class RawClient:
    """A blocking HTTP/1.1 client with one kept-alive connection: no library between the socket and the clock."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.addr = (parts.hostname, parts.port or 80)
        self.request_head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                             "Content-Type: application/json\r\nAccept: text/event-stream\r\n")
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def stream(self) -> Stream:
        nonce, body = stream_body()
        try:
            return self._stream(nonce, body.encode())
        except _Stale:
            self.close()
            return self._stream(nonce, body.encode())

    def _stream(self, nonce: str, body: bytes) -> Stream:
        reused = self.sock is not None
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = (self.request_head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        resp = _Response()
        first = 0
        events: list[int] = []
        seen = 0
        t0 = time.perf_counter_ns()
        try:
            self.sock.sendall(data)
            while not resp.complete:
                chunk = self.sock.recv(65536)
                now = time.perf_counter_ns()
                if not chunk:
                    if resp.framing == "close":
                        break
                    raise ConnectionError("connection closed mid-response")
                first = first or now
                resp.feed(chunk)
                count = resp.body.count(b"\n\n")
                events.extend([now] * (count - seen))
                seen = count
        except (ConnectionError, OSError) as exc:
            self.close()
            if reused and not first:
                raise _Stale from exc
            raise
        end = time.perf_counter_ns()
        if not resp.keep_alive:
            self.close()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status} {bytes(resp.body[:160])!r}")
        if b"data: [DONE]" not in resp.body:
            raise RuntimeError(f"stream ended without [DONE] after {seen} events")
        ms = 1e-6
        return Stream(nonce, (first - t0) * ms, (end - t0) * ms, [(t - t0) * ms for t in events])


class _Stale(Exception):
    """A kept-alive connection the server had closed: reconnect and send again."""


def stream_rounds(rows: list[Row], rounds: int, warmup: int = 2) -> None:
    """`rounds` rounds of one stream per row; row.streams gets a Stream or an error per round.

    The rows take their turns in a new (seeded) order each round, and each stream starts after
    a pause: a proxy that closes its upstream connection leaves the emulator work to do just
    after its stream, which would otherwise land on whichever row always came next.
    """
    clients = {row.name: RawClient(row.url) for row in rows}
    rng = random.Random(1)
    try:
        for i in range(-warmup, rounds):
            for row in rng.sample(rows, len(rows)):
                time.sleep(PAUSE_S)
                try:
                    result: Stream | str = clients[row.name].stream()
                except (OSError, RuntimeError) as exc:
                    result = f"{type(exc).__name__}: {exc}"
                if i >= 0:
                    row.streams.append(result)
    finally:
        for client in clients.values():
            client.close()


def join_log(emulator: str, rows: list[Row]) -> int:
    """Fill each stream's upstream times from the emulator's request log; returns how many matched."""
    log = httpx.get(f"{emulator}/_airisk/log", params={"limit": 2000}, timeout=10).json()
    by_nonce = {e["nonce"]: e for e in log if "nonce" in e and "ttft_ms" in e and "total_ms" in e}
    matched = 0
    for row in rows:
        for s in ok_streams(row):
            if (e := by_nonce.get(s.nonce)) is not None:
                s.upstream_first_ms, s.upstream_total_ms = e["ttft_ms"], e["total_ms"]
                matched += 1
    return matched


def ok_streams(row: Row) -> list[Stream]:
    return [s for s in row.streams if isinstance(s, Stream)]


def paired(row: Row, base: Row, attr: str) -> list[float]:
    """Per round: this row's figure minus the baseline row's in the same round (where both have it)."""
    out = []
    for a, b in zip(row.streams, base.streams, strict=True):
        if isinstance(a, Stream) and isinstance(b, Stream):
            x, y = getattr(a, attr), getattr(b, attr)
            if x is not None and y is not None:
                out.append(x - y)
    return out


def added(row: Row, base: Row, what: str) -> list[float]:
    """Time added over base per round ("first" or "total"), the emulator's own lateness taken out when logged."""
    return paired(row, base, f"{what}_over_ms") or paired(row, base, "first_byte_ms" if what == "first" else "total_ms")


def _p(values: list[float], q: float) -> float:
    return statistics.median(values) if q == 50 else pct(values, q)


def print_streams(rows: list[Row], base: Row) -> None:
    print(f"   {'row':<34}{'first byte':>16}{'total':>16}{'added first byte':>20}{'added total':>13}{'failed':>8}")
    print(f"   {'':<34}{'p50     p99':>16}{'p50     p99':>16}{'p50      p99':>20}{'p50':>13}")
    for row in rows:
        good = ok_streams(row)
        failures = [s for s in row.streams if isinstance(s, str)]
        if not good:
            print(f"   {row.name:<34}no figure: {row.problem or (failures[0] if failures else 'no stream')}")
            continue
        fb = [s.first_byte_ms for s in good]
        total = [s.total_ms for s in good]
        line = (f"   {row.name:<34}{_p(fb, 50):8.2f}{_p(fb, 99):8.2f}{_p(total, 50):8.2f}{_p(total, 99):8.2f}")
        if row is base:
            line += f"{'-':>20}{'-':>13}"
        else:
            first, total = added(row, base, "first"), added(row, base, "total")
            line += f"{_p(first, 50):+11.2f}{_p(first, 99):+9.2f}{_p(total, 50):+13.2f}"
        print(line + f"{len(failures):8d}")
        if failures:
            print(f"   {'':<34}first failure: {failures[0][:150]}")


# ---------------------------------------------------------------------------- 3. the fault


def fault_rounds(row: Row, faulted: Row, rounds: int) -> str:
    """Rounds of one stream without the fault, then one with it (added and removed around it)."""
    control = f"{urlsplit(row.url).scheme}://{urlsplit(row.url).netloc}/_airisk/faults"
    fault = {"type": "first_token_delay", "params": {"delay_ms": FAULT_MS}, "route": "openai", "for_s": 60}
    clean, slow = RawClient(row.url), RawClient(row.url)
    try:
        with httpx.Client(timeout=10) as c:
            for i in range(-2, rounds):
                for client, target, on in ((clean, row, False), (slow, faulted, True)):
                    if on:
                        r = c.post(control, json=fault)
                        if r.status_code >= 300:
                            return f"POST {control} -> HTTP {r.status_code} {r.text[:200]!r}"
                    try:
                        result: Stream | str = client.stream()
                    except (OSError, RuntimeError) as exc:
                        result = f"{type(exc).__name__}: {exc}"
                    if on:
                        r = c.delete(control)
                        if r.status_code >= 300:
                            return f"DELETE {control} -> HTTP {r.status_code} {r.text[:200]!r}"
                    if i >= 0:
                        target.streams.append(result)
    except httpx.HTTPError as exc:
        return f"control API: {type(exc).__name__}: {exc}"
    finally:
        clean.close()
        slow.close()
    return ""


def print_fault(clean: Row, slow: Row) -> dict[str, float]:
    """Per stream: median and largest gap between SSE events (~10 ms streaming, ~0 a burst)."""
    print(f"   {'row':<34}{'first byte':>11}{'total':>9}{'after 1st byte':>16}{'median gap':>12}"
          f"{'largest gap':>13}{'failed':>8}")
    print(f"   {'':<34}{'p50':>11}{'p50':>9}{'p50':>16}{'p50':>12}{'max':>13}")
    for row in (clean, slow):
        good = ok_streams(row)
        failures = [s for s in row.streams if isinstance(s, str)]
        if not good:
            print(f"   {row.name:<34}no figure: {failures[0] if failures else 'no stream'}")
            return {}
        print(f"   {row.name:<34}{_p([s.first_byte_ms for s in good], 50):11.2f}"
              f"{_p([s.total_ms for s in good], 50):9.2f}{_p([s.after_first_ms for s in good], 50):16.2f}"
              f"{_p([statistics.median(s.gaps_ms) for s in good], 50):12.2f}"
              f"{max(max(s.gaps_ms) for s in good):13.2f}{len(failures):8d}")
        if failures:
            print(f"   {'':<34}first failure: {failures[0][:150]}")
    more = {"first": _p(added(slow, clean, "first"), 50), "total": _p(added(slow, clean, "total"), 50),
            "after_first": _p(paired(slow, clean, "after_first_ms"), 50),
            "gap": (_p([statistics.median(s.gaps_ms) for s in ok_streams(slow)], 50)
                    - _p([statistics.median(s.gaps_ms) for s in ok_streams(clean)], 50))}
    print(f"   added by the fault (p50 of the paired rounds): first byte {more['first']:+.2f} ms, "
          f"total {more['total']:+.2f} ms,\n   after the first byte {more['after_first']:+.2f} ms, "
          f"median gap {more['gap']:+.2f} ms (a fault per chunk would add ~{FAULT_MS * TOKENS:g} ms after "
          f"the first byte)")
    return more


# ---------------------------------------------------------------------------- main


def goal(text: str, value: str, met: bool | None) -> None:
    verdict = "not measured" if met is None else ("met" if met else "NOT MET")
    print(f"   {text:<76}{value:<24}{verdict}")


def goal_figures(row: Row, direct: Row) -> dict[str, tuple[str, bool | None]]:
    """A row's figure and verdict for each measured goal of issue 16 ("-" and None where it has none)."""
    out: dict[str, tuple[str, bool | None]] = {}
    first = added(row, direct, "first") if not row.problem else []
    p50, p99 = (_p(first, 50), _p(first, 99)) if first else (None, None)
    out["added first byte p50 <= 0.3 ms over direct"] = ("-", None) if p50 is None else (f"{p50:+.2f} ms", p50 <= 0.3)
    out["added first byte p99 <= 1 ms over direct"] = ("-", None) if p99 is None else (f"{p99:+.2f} ms", p99 <= 1.0)
    ratio = row.wrk["rps"] / direct.wrk["rps"] if row.wrk and direct.wrk else None
    cpu = row.wrk.get("cpu_us") if row.wrk else None
    out["pass-through req/s >= 0.85x direct"] = ("-", None) if ratio is None else (f"{ratio:.3f}x", ratio >= 0.85)
    out["proxy CPU <= 80 µs per request"] = ("-", None) if cpu is None else (f"{cpu:.0f} µs", cpu <= 80)
    return out


def airisk_proxy(stack: contextlib.ExitStack, name: str, flags: list[str], emu: str, airisk: list[str] | None) -> Row:
    """`airisk proxy FLAGS --emulator EMU` on a free port (its problem said when ``airisk`` is None)."""
    port = free_port()
    row = Row(name, url=f"http://127.0.0.1:{port}/openai/chat/completions")
    if airisk is None:
        row.problem = "`airisk proxy` does not exist yet in this checkout"
    else:
        launch(stack, row, [*airisk, "proxy", *flags, "--port", str(port), "--emulator", emu], cwd=ROOT)
    return row


def script_proxy(stack: contextlib.ExitStack, name: str, script: str, emu: str) -> Row:
    """One of bench/'s own proxies (``script --port P --upstream EMU``), path unchanged."""
    port = free_port()
    row = Row(name, url=f"http://127.0.0.1:{port}/openai/v1/chat/completions")
    launch(stack, row, [sys.executable, str(ROOT / "bench" / script), "--port", str(port), "--upstream", emu])
    return row


def main(quick: bool, rounds: int, seconds: float) -> None:
    agentbreak, agentbreak_version = ensure_agentbreak()
    toxy_modules, toxy_version = ensure_toxy()
    os.sched_setaffinity(0, {LOAD_CPU})
    wrk = shutil.which("wrk")
    if quick:
        rounds, seconds = min(rounds, 10), min(seconds, 3)
    warmup = 1.0
    airisk = [sys.executable, "-c", "import sys; from airisk.cli import main; sys.argv[0] = 'airisk'; sys.exit(main())"]
    has_proxy = subprocess.run([*airisk, "proxy", "--help"], capture_output=True, cwd=ROOT).returncode == 0

    with emulator_process(free_port(), ttft_ms=0, gap_ms=0) as emu, contextlib.ExitStack() as stack:
        direct = Row("direct", url=f"{emu}/openai/v1/chat/completions")
        rows = [direct]

        # airisk's proxy, then the same with every request on the ASGI course (as before chaos.proxyfast)
        airisk_row, asgi_row = (
            airisk_proxy(stack, name, flags, emu, airisk if has_proxy else None)
            for name, flags in (("airisk proxy", []), ("airisk, --no-relay", ["--no-relay"])))
        floor_row = script_proxy(stack, "raw asyncio+httptools (floor)", "raw_proxy.py", emu)
        rows += [airisk_row, asgi_row, floor_row, script_proxy(stack, "naive Starlette+httpx", "naive_proxy.py", emu)]

        port = free_port()
        row = Row(f"agentbreak {agentbreak_version}", url=f"http://127.0.0.1:{port}/v1/chat/completions")
        if agentbreak is None:
            row.problem = agentbreak_version
        else:
            launch(stack, row, [str(agentbreak), "serve", "--config", "application.yaml", "--scenarios",
                                "scenarios.yaml"], cwd=agentbreak_config(emu, port))
        rows.append(row)

        port = free_port()
        row = Row(f"toxy {toxy_version}", url=f"http://127.0.0.1:{port}/openai/v1/chat/completions")
        if toxy_modules is None:
            row.problem = toxy_version
        else:
            launch(stack, row, ["node", str(ROOT / "bench" / "toxy_proxy.js"), str(port), emu],
                   env={**os.environ, "NODE_PATH": str(toxy_modules)})
        rows.append(row)

        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() or "-"
        print(f"upstream: airisk emulator at {emu}; emulator, wrk and this client on CPU {LOAD_CPU}, "
              f"each proxy alone on CPU {PROXY_CPU}")
        print(f"rows: {', '.join(r.name for r in rows)} (node {node}); no fault active in any of them")
        for r in rows:
            if r.problem:
                print(f"   {r.name}: {r.problem}")

        print(f"\n1. non-streaming POST, wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{seconds:g}s --latency "
              f"(after {warmup:g} s of warm-up), each proxy in two passes (rows in order, then reversed);\n"
              f"   emulator answers at once (TTFT 0, no token gaps)")
        again = None
        if wrk is None:
            print("   wrk not found: install it with `apt-get install -y wrk`; part 1 skipped")
        else:
            again = part1(rows, seconds, warmup)
            print_part1(rows, again)

        httpx.put(f"{emu}/_airisk/profiles/*", json={"ttft_ms": STREAM_TTFT_MS, "token_gap_ms": STREAM_GAP_MS,
                                                     "tokens": TOKENS}).raise_for_status()
        floor = Row("direct again (noise floor)", url=direct.url)
        streamed = [direct, floor, *rows[1:]]
        live = [r for r in streamed if not r.problem]
        print(f"\n2. streaming: {rounds} rounds of one stream per row (new order each round, {PAUSE_S * 1000:g} ms "
              f"apart), one kept-alive connection per row;\n   emulator TTFT {STREAM_TTFT_MS:g} ms, "
              f"{STREAM_GAP_MS:g} ms between {TOKENS} tokens; ms from sending the request. 'added': each "
              f"request's time beyond\n   the emulator's own (its log, joined by a nonce in the prompt) minus "
              f"direct's in the same round")
        stream_rounds(live, rounds)
        matched = join_log(emu, live)
        if matched < sum(len(ok_streams(r)) for r in live):
            print(f"   (only {matched} streams found in the emulator's log: 'added' is raw time where it is missing)")
        print_streams(streamed, direct)

        print(f"\n3. {FAULT_MS:g} ms first_token_delay through airisk's proxy: {rounds} rounds of one stream "
              f"without the fault, one with it")
        fault: dict[str, float] = {}
        if airisk_row.problem:
            print(f"   skipped: {airisk_row.problem}")
        else:
            clean = Row("airisk proxy, no fault", url=airisk_row.url)
            slow = Row(f"airisk proxy, {FAULT_MS:g} ms fault", url=airisk_row.url)
            problem = fault_rounds(clean, slow, rounds)
            if problem:
                print(f"   no figure: {problem}")
            else:
                join_log(emu, [clean, slow])
                fault = print_fault(clean, slow)

    print("\ngoals (issue 16); under each, airisk --no-relay's figure (every request on the ASGI course) and the "
          "floor's\n(bench/raw_proxy.py, the bare design), same run")
    mine, bare = goal_figures(airisk_row, direct), goal_figures(floor_row, direct)
    before = goal_figures(asgi_row, direct)
    for text in mine:
        goal(text, *mine[text])
        goal("   --no-relay:", *before[text])
        goal("   floor:", *bare[text])
    text = f"{FAULT_MS:g} ms fault once per request (total +{FAULT_MS:g}±10, after 1st byte ±5, gap ±2)"
    if fault:
        ok = abs(fault["total"] - FAULT_MS) <= 10 and abs(fault["after_first"]) <= 5 and abs(fault["gap"]) <= 2
        goal(text, f"{fault['total']:+.1f} / {fault['after_first']:+.1f} / {fault['gap']:+.1f} ms", ok)
    else:
        goal(text, "-", None)
    print("      floor: - (the bare design has no faults)")
    if again is not None and direct.wrk and again.wrk:
        print(f"\n(drift: direct at the end ran at {again.wrk['rps'] / direct.wrk['rps']:.2f}x direct at the start)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 stream rounds and 3 s wrk runs")
    parser.add_argument("--rounds", type=int, default=None, help="streamed requests per row (default 30)")
    parser.add_argument("--seconds", type=float, default=None, help="wrk duration per row (default 8)")
    parser.add_argument("--capture", action="store_true",
                        help="measure `airisk proxy --capture` against the same proxy without it (only that)")
    args = parser.parse_args()
    if args.capture:
        from bench.capture_overhead import main as capture_main

        capture_main(args.seconds or 3.0, args.rounds or 10)
    else:
        main(args.quick, args.rounds or 30, args.seconds or 8.0)
