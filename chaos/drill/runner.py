"""Run a drill: start what it needs, drive load, break providers phase by phase, judge.

1. Safety first: the product and the proxy must be on loopback or in ``allow_hosts``.
2. Start (or reuse) the fault proxy, the emulator when asked, and the product when the drill
   says how; note where the proxy's request log stands.
3. Start Locust (`chaos.drill.loadgen`) in its own process (a master and N workers with
   ``workers``), writing one record per product request.
4. Phase by phase: add the phase's faults to the proxy with a short lease and renew it every
   second (killed with -9, the runner leaves no fault behind longer than the lease), watch the
   records live (the guards), remove the faults when the phase ends. A lease that ran out under
   a stall is put back, and what met the gap is left out of the figures (`chaos.drill.leases`).
5. A guard breach (success rate under the floor for N seconds, or the maximum duration)
   removes the drill's faults at once and stops the load.
6. Merge the records, read the proxy's log for the drill; once the load has stopped, check the
   sampled answers of each feature with an eval set against their cases (`chaos.drill.judging`:
   here, after the load, so that checking, or a judge model, costs the measured product nothing),
   and judge (`chaos.drill.report`).
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from chaos.control.client import ControlClient, control_headers
from chaos.drill.judging import judge_sample
from chaos.drill.leases import Held, LeaseError, Leases
from chaos.drill.loadconfig import load_config
from chaos.drill.report import DrillResult, PhaseRun, Tally
from chaos.drill.spec import ConfigError, DrillSpec, EvalSet
from monitor.children import CONTROL_ENV, NETWORK_ENV, Child, spawn
from probes.addresses import is_loopback

RENEW_EVERY = 1.0
TICK = 0.1


class DrillError(RuntimeError):
    """The drill cannot run (unsafe target, a component that does not start); the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_targets(spec: DrillSpec) -> None:
    """Drill only loopback, or hosts the drill file lists: production cannot be drilled by accident."""
    for what, url in (("product.base_url", spec.product.base_url), ("proxy.url", spec.proxy.url)):
        host = urlsplit(url).hostname or ""
        if host in spec.allow_hosts:
            continue
        if not is_loopback(host):
            raise DrillError(f"{what}: {host or url!r} is not loopback and not in allow_hosts; "
                             "add it to allow_hosts to drill it on purpose")


def _chaos_run(*args: str) -> list[str]:
    """The chaos package's own entry point (`chaos.run`): the runner does not call the airisk CLI."""
    return [sys.executable, "-m", "chaos.run", *args]


def _healthy(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, timeout=0.5, headers=headers).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Stack:
    """The processes a drill started, stopped in reverse order however it ends.

    Each is a `monitor.children.Child`: its own process group, gone when this process dies
    (even by SIGKILL), stopped by group; its environment is the basic allow-list
    (`monitor.children.BASE_ENV`) plus the names given in ``keep`` and the values in ``env``,
    never the whole of ours (a provider key in it stays here)."""

    procs: list[tuple[str, Child]] = field(default_factory=list)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="airisk-drill-")))
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _once: set[Child] = field(default_factory=set)  # `run_once` commands under way
    _interrupted: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def closing(self, thing):
        self._closers.append(thing.close)
        return thing

    def adopt(self, thing) -> None:
        """Something with a ``stop()`` of its own (e.g. the local model server), stopped with the rest."""
        self._closers.append(thing.stop)

    def run_once(self, name: str, cmd: list[str], *, env: dict[str, str] | None = None,
                 keep: Iterable[str] = (), timeout: float) -> int:
        """Run a command to its end (output in the logs folder); its exit status, or -9 on timeout.
        `interrupt` (from another thread) ends it sooner. ``env`` and ``keep`` as for `start`."""
        with self._lock, (self.logs / f"{name}.log").open("wb") as out:
            if self._interrupted:
                return -signal.SIGINT
            # Its own session: a terminal's Ctrl-C reaches it once, through `interrupt`, not twice
            # (a second one would break into its clean-up).
            proc = spawn(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, keep=keep)
            self._once.add(proc)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9
        finally:
            with self._lock:
                self._once.discard(proc)

    def interrupt(self, grace: float = 20.0) -> None:
        """Ctrl-C (SIGINT) to the `run_once` commands under way, so they clean up (a drill removes its
        faults and stops its load) and end; killed if still running after ``grace`` seconds; no new
        one starts. Needed because a service manager's SIGTERM reaches only our own process: a
        command it started would run on to its end."""
        with self._lock:  # none starts from here on
            self._interrupted = True
            running = [p for p in self._once if p.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGINT)
        for proc in running:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()

    def start(self, name: str, cmd: list[str], *, env: dict[str, str] | None = None, keep: Iterable[str] = (),
              cwd: Path | None = None) -> Child:
        """Start ``cmd`` (output in ``logs/NAME.log``) with the basic environment, the variables of ours
        named in ``keep`` (shell patterns allowed, e.g. ``STOREFRONT_*``) and ``env`` set over them."""
        with (self.logs / f"{name}.log").open("wb") as out:  # the child keeps its own descriptor
            proc = spawn(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, keep=keep, cwd=cwd)
        self.procs.append((name, proc))
        return proc

    def wait_healthy(self, name: str, url: str, proc: Child, timeout: float,
                     headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _healthy(url, headers):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = (self.logs / f"{name}.log").read_text(errors="replace")[-600:]
        raise DrillError(f"{name} did not become healthy at {url}: {tail.strip() or 'no output'}")

    def stop(self, grace: float = 10.0) -> None:
        """Everything it started: SIGTERM to each child's process group (newest first, all at once),
        SIGKILL to a group still there after ``grace`` seconds."""
        self.interrupt()
        for close in self._closers:
            close()
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace
        for _, proc in reversed(self.procs):
            proc.stop(max(0.0, deadline - time.monotonic()))
        self.procs.clear()


class Records:
    """Tails the load generator's record files as they grow; hands on what is new, keeps none of it
    (`chaos.drill.report.Tally` counts them). ``count``: records read; ``unreadable``: lines skipped."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._offsets: dict[Path, int] = {}
        self.count = 0
        self.unreadable = 0

    def read_new(self) -> list[dict[str, Any]]:
        new = []
        for path in sorted(self.folder.glob("records-*.jsonl")):
            with path.open("rb") as f:
                f.seek(self._offsets.get(path, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
            self._offsets[path] = self._offsets.get(path, 0) + end
            for line in data[:end].splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    float(record["t"]), float(record["ms"]), record["f"], record["ok"], record["deg"]
                except (ValueError, TypeError, KeyError):
                    self.unreadable += 1
                    continue
                new.append(record)
        self.count += len(new)
        return new


class Guard:
    """Product-wide success rate over the last ``window`` seconds, against a floor."""

    def __init__(self, floor: float, window: float) -> None:
        self.floor, self.window = floor, window
        self._recent: deque[tuple[float, bool]] = deque()
        self._below_since: float | None = None

    def feed(self, records: list[dict[str, Any]], now: float) -> str | None:
        for r in records:
            self._recent.append((r["t"] + r["ms"] / 1000, r["ok"] or r["deg"]))
        while self._recent and self._recent[0][0] < now - self.window:
            self._recent.popleft()
        if self.floor <= 0 or len(self._recent) < 5:
            return None
        rate = sum(ok for _, ok in self._recent) / len(self._recent)
        if rate >= self.floor:
            self._below_since = None
            return None
        self._below_since = self._below_since or now
        if now - self._below_since >= self.window:
            return f"success rate {rate:.0%} below the floor {self.floor:.0%} for {self.window:g}s"
        return None


class Proxy:
    """The fault proxy's control API, as the drill uses it (through `ControlClient`); its faults
    go through `leases` (`chaos.drill.leases.Leases`)."""

    def __init__(self, url: str, run_id: str, lease: float) -> None:
        self.url = url.rstrip("/")
        self.client = ControlClient(self.url, timeout=5)
        self.leases = Leases(self.client, run_id, lease)

    def log_position(self) -> int:
        last = self.client.log(limit=1)
        return last[-1]["id"] if last else 0

    def log_after(self, position: int) -> list[dict[str, Any]]:
        return self.client.log(after=position)

    def close(self) -> None:
        self.client.close()


ENTRIES_KEPT = 10_000  # proxy log entries handed back for the store, a uniform sample beyond


class ProxyLog:
    """Reads the proxy's request log while the drill runs, so none is lost to its ring (the proxy
    keeps its newest 10,000), and feeds each finished entry of the drill to the tally once.

    An entry is finished when it has ``total_ms``; one still open (a hanging request) is read
    again on the next `poll`, until ``final``. Entries that were gone from the ring before they
    were read are counted in ``lost``; the entries handed back for the store are every one up to
    ``keep``, then a uniform sample of ``keep``; `notes` says so."""

    def __init__(self, proxy: Proxy, position: int, *, since: float, tally: Tally | Held, keep: int = ENTRIES_KEPT,
                 seed: int | None = None) -> None:
        self.proxy, self.cursor, self.since, self.tally, self.keep = proxy, position, since, tally, keep
        self._taken: set[int] = set()  # ids above the cursor already fed (an older one is still open)
        self._rng = random.Random(seed)
        self.entries: list[dict[str, Any]] = []
        self.seen = 0
        self.lost = 0

    def poll(self, *, final: bool = False) -> None:
        entries = self.proxy.log_after(self.cursor)
        if entries and entries[0]["id"] > self.cursor + 1:
            gone = range(self.cursor + 1, entries[0]["id"])
            self.lost += sum(1 for i in gone if i not in self._taken)
            self._taken.difference_update(gone)
            self.cursor = entries[0]["id"] - 1
        for e in entries:
            if e["id"] in self._taken or not (final or "total_ms" in e):
                continue
            self._taken.add(e["id"])
            if e.get("at", 0) >= self.since:
                self._take(e)
        while self.cursor + 1 in self._taken:
            self.cursor += 1
            self._taken.discard(self.cursor)

    def _take(self, entry: dict[str, Any]) -> None:
        self.tally.add_entries([entry])
        self.seen += 1
        if len(self.entries) < self.keep:
            self.entries.append(entry)
        elif (j := self._rng.randrange(self.seen)) < self.keep:
            self.entries[j] = entry

    def notes(self) -> list[str]:
        notes = []
        if self.lost:
            notes.append(f"proxy log: {self.lost:,} entries left the proxy's ring before they were read; "
                         "the routes that answered are counted without them")
        if self.seen > self.keep:
            notes.append(f"proxy log: a uniform sample of {self.keep:,} of its {self.seen:,} entries is stored")
        return notes


@dataclass
class Options:
    workers: int | None = None  # overrides the file's load.workers
    base_dir: Path | None = None  # where the drill file is: product.start.cwd is relative to it
    live: Callable[[dict[str, Any]], None] | None = None  # called every tick with the progress
    extra_env: dict[str, str] = field(default_factory=dict)
    on_records: Callable[[list[dict[str, Any]]], None] | None = None  # each batch of new records (benches)


def _format_env(env: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    return {k: v.format(**values) for k, v in env.items()}


@contextlib.contextmanager
def running_stack() -> Iterator[Stack]:
    """A `Stack` for a ``with`` block: everything it started is stopped however the block ends."""
    stack = Stack()
    try:
        yield stack
    finally:
        stack.stop()


def run_drill(spec: DrillSpec, options: Options | None = None) -> tuple[DrillResult, list[dict[str, Any]]]:
    """Runs the drill; returns its result and the proxy log entries of its requests."""
    options = options or Options()
    check_targets(spec)
    try:
        eval_sets = spec.eval_sets(options.base_dir)
    except ConfigError as exc:
        raise DrillError(str(exc)) from None
    run_id = f"drill-{uuid.uuid4().hex[:8]}"
    with running_stack() as stack:
        proxy_url, emulator_url = _start_proxy(spec, stack)
        values = {"proxy": proxy_url, "emulator": emulator_url or "", "python": sys.executable}
        if spec.product.start is not None:
            start = spec.product.start
            command = [part.format(**values) for part in start.command]
            cwd = (options.base_dir or Path.cwd()) / start.cwd if start.cwd else None
            proc = stack.start("product", command, env={**_format_env(start.env, values), **options.extra_env},
                               keep=start.pass_env, cwd=cwd)
            stack.wait_healthy("product", spec.product.base_url.rstrip("/") + start.health, proc,
                               start.startup_timeout)
        proxy = stack.closing(Proxy(proxy_url, run_id, spec.lease))
        position = proxy.log_position()
        records = Records(stack.logs)
        load = _start_load(spec, stack, options.workers, eval_sets)
        guard = Guard(spec.guards.min_success_rate, spec.guards.for_)
        started = time.time()
        tally = Tally(spec, started_at=started)
        held = Held(proxy.leases, tally)
        log = ProxyLog(proxy, position, since=started - 1, tally=held)
        feed = _Feed(records, held, guard, options.on_records)
        aborted = None
        try:
            aborted = _run_phases(spec, proxy.leases, feed, log, tally, started, load, options)
        finally:
            proxy.leases.remove_all()
        for proc in load:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in load:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
        ended = time.time()
        feed.read(ended)
        log.poll(final=True)
        held.release()
        tally.notes += held.notes()
        if records.unreadable:
            tally.notes.append(f"{records.unreadable:,} unreadable lines in the load generator's records skipped")
        tally.notes += log.notes()
        judged = judge_sample(tally.samples(), eval_sets)
        return tally.result(ended_at=ended, aborted=aborted, judged=judged), log.entries


@dataclass
class _Feed:
    """New records to the tally (through `Held`), the guard and a bench's hook."""

    records: Records
    tally: Held
    guard: Guard
    hook: Callable[[list[dict[str, Any]]], None] | None

    def read(self, now: float) -> str | None:
        new = self.records.read_new()
        self.tally.add_records(new)
        if self.hook is not None and new:
            self.hook(new)
        return self.guard.feed(new, now)


def start_emulator(stack: Stack, *, ttft_ms: float = 20, gap_ms: float = 2) -> str:
    """The emulator (`chaos.run`, as `airisk emulate`) on a free port, healthy; its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = stack.start("emulator", _chaos_run("emulate", "--port", str(port), "--ttft-ms", f"{ttft_ms:g}",
                                              "--token-gap-ms", f"{gap_ms:g}"), keep=CONTROL_ENV)
    stack.wait_healthy("emulator", url + "/_airisk/health", proc, 20, control_headers())
    return url


def start_proxy(stack: Stack, *, port: int, emulator: str | None = None, routes: dict[str, str] | None = None) -> str:
    """The fault proxy (`chaos.run`, as `airisk proxy`) on ``port`` (to ``emulator`` when given),
    healthy; its URL. It gets the control token and the network settings (HTTPS_PROXY, CA files: it
    may call real providers) of our environment, and no provider key: the product sends its own."""
    url = f"http://127.0.0.1:{port}"
    args = ["proxy", "--port", str(port)] + (["--emulator", emulator] if emulator else [])
    for name, upstream in (routes or {}).items():
        args += ["--route", f"{name}={upstream}"]
    proc = stack.start("proxy", _chaos_run(*args), keep=(*CONTROL_ENV, *NETWORK_ENV))
    stack.wait_healthy("proxy", url + "/_airisk/health", proc, 20, control_headers())
    return url


def _start_proxy(spec: DrillSpec, stack: Stack) -> tuple[str, str | None]:
    url = spec.proxy.url.rstrip("/")
    if _healthy(url + "/_airisk/health", control_headers()):
        return url, None
    if not spec.proxy.start:
        raise DrillError(f"proxy.url: no fault proxy answers at {url} (set proxy.start: true to start one)")
    emulator_url = start_emulator(stack) if spec.proxy.emulator else None
    routes = {name: upstream.format(emulator=emulator_url or "") for name, upstream in spec.proxy.routes.items()}
    start_proxy(stack, port=urlsplit(url).port or 8480, emulator=emulator_url, routes=routes)
    return url, emulator_url


def _start_load(spec: DrillSpec, stack: Stack, workers: int | None, eval_sets: dict[str, EvalSet]) -> list[Child]:
    workers = spec.load.workers if workers is None else workers
    config = load_config(spec, eval_sets, records_dir=stack.logs, workers=workers,
                         master_port=free_port() if workers else 0)
    path = stack.logs / "load.json"
    path.write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "chaos.drill.loadgen", str(path)]
    if not workers:
        return [stack.start("locust", [*cmd, "--role", "local"])]
    procs = [stack.start("locust-master", [*cmd, "--role", "master"])]
    procs += [stack.start(f"locust-worker-{i}", [*cmd, "--role", "worker"]) for i in range(workers)]
    return procs


def _run_phases(spec: DrillSpec, leases: Leases, feed: _Feed, log: ProxyLog, tally: Tally, started: float,
                load: list[Child], options: Options) -> str | None:
    for index, phase in enumerate(spec.phases):
        faults = [step.fault_dict() for step in phase.faults]
        run = PhaseRun(phase.name, 0.0, 0.0, faults)
        try:
            leases.add(index, phase.name, faults)
        except LeaseError as exc:
            raise DrillError(str(exc)) from None
        run.start = time.time()  # once the proxy has them: a request before this met no fault
        tally.begin(run)
        end = run.start + phase.duration
        renewed = time.monotonic()
        try:
            while (now := time.time()) < end:
                if time.monotonic() - renewed >= RENEW_EVERY:
                    leases.renew()  # a lapsed fault is put back, its gap known (`Held` leaves it out)
                    feed.tally.release()
                    log.poll()
                    renewed = time.monotonic()
                reason = feed.read(now) or leases.gone
                if reason is None and now - started > spec.guards.max_duration:
                    reason = f"the drill ran longer than max_duration ({spec.guards.max_duration:g}s)"
                if reason is None and all(p.poll() is not None for p in load):
                    reason = "the load generator stopped (see its log)"
                if options.live is not None:
                    options.live({"phase": phase.name, "index": index, "phases": len(spec.phases),
                                  "elapsed": now - started, "total": spec.duration,
                                  "counts": tally.counts(phase.name), "records": feed.records.count})
                if reason is not None:
                    run.end = time.time()
                    leases.remove_all()  # at once: the guard exists to stop the damage
                    return reason
                time.sleep(TICK)
        finally:
            run.end = run.end or time.time()  # before the removal: a request after this may meet none
            tally.end(run)
            leases.remove_all()
            feed.tally.release()
    return None
