"""`airisk up`: the main job. The monitor, the local model and the dashboard, on loopback.

With an `airisk.yaml` it watches what the file says. Without one it runs a labelled demo
(its own database under ``$AIRISK_HOME/demo``): the emulator's providers with a realistic
incident script (`chaos.demo`), the real local model, the fault proxy, and the storefront
example with its four features; a few days of emulated history are backfilled on the first
run, the storefront's eval sets are run against the emulated providers and the local model (the
first `DEMO_EVAL_CASES` cases of each, every few hours: "Can we own it?" then has true figures for
the bundled model), and drills run against the storefront now and then, so every dashboard page has
something true to show within a minute or two. Provider keys in the environment (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``, ...) add those real providers to the demo's targets.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from chaos.drill.runner import DrillError, Stack, free_port
from monitor.children import CONTROL_ENV, STORE_ENV
from monitor.localmodel import LocalModelError
from probes.catalog import CATALOG

REPO = Path(__file__).resolve().parents[1]  # where `examples` (the storefront) is importable
DEMO_PROVIDERS = ("openai", "anthropic", "gemini", "mistral", "groq", "cohere", "deepseek")
NO_KEY = "AIRISK_DEMO_NO_KEY"  # an unset variable: emulated targets never send a real key to the emulator
DRILL_EVERY_S = 15 * 60
DEMO_EVAL_CASES = 12  # per feature and backend: the local model answers one at a time, ~1-3 s each here
EVAL_EVERY = 24  # the demo's eval runs once every EVAL_EVERY turns of its drill loop (3 h), the first turn
WATCH_EVERY_S = 0.5  # how often `up` looks at what it needs: a death is said well within 15 s
# The storefront's eval sets, by absolute path: the demo's config is written to a temporary home. Description
# and tags also measure the local model as a candidate ("could we own them?"); chat's local fallback counts
# in the score only once at least 60% of its answers are proven good (the interval's lower bound).
_EVALS = REPO / "examples" / "storefront" / "evals"
DEMO_FEATURES = {
    "description": {"criticality": "high", "chain": [{"backend": "openai"}],
                    "description": "product descriptions (OpenAI only)",
                    "eval": str(_EVALS / "description.jsonl"), "candidates": ["local"]},
    "chat": {"criticality": "critical", "chain": [{"backend": "anthropic"}, {"backend": "local"}],
             "description": "support chat (Anthropic, the local model as fallback)",
             "eval": str(_EVALS / "chat.jsonl"), "min_quality": 0.6},
    "tags": {"criticality": "medium", "chain": [{"backend": "openai"}, {"degraded": "heuristic", "quality": 0.6}],
             "description": "review tagging (OpenAI, a keyword heuristic as fallback)",
             "eval": str(_EVALS / "tags.jsonl"), "candidates": ["local"]},
    "search": {"criticality": "low", "chain": [{"backend": "local"}], "description": "search rerank (local model)",
               "eval": str(_EVALS / "search.jsonl")},
}


@dataclass
class Ports:
    dashboard: int = 8501
    emulator: int = 8470
    proxy: int = 8480
    storefront: int = 8600
    local: int = 8011


class UpError(RuntimeError):
    """`up` cannot go on: something it needs did not start or has died. The message says what, and where its
    log is; the command line prints it and exits 1."""


# What each child is given of our environment, beyond the basics every child gets (`monitor.children`):
# provider keys and other secrets stay in this process (the monitor needs them), out of the emulator, the
# proxy, the storefront, the drills and the dashboard.
_DASHBOARD_KEEP = (*STORE_ENV, "AIRISK_CONFIG", "AIRISK_DEMO", "AIRISK_DASHBOARD_*", "STREAMLIT_*")


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


def dashboard_command(host: str, port: int) -> list[str]:
    from dashboard.serve import command

    return command(address=host, port=port)


def demo_config(ports: Ports, *, local_url: str, environ: dict[str, str]) -> dict:
    """The demo's airisk.yaml: emulated providers, the local model, keyed real providers, the storefront."""
    emulator = f"http://127.0.0.1:{ports.emulator}"
    targets = []
    for name in DEMO_PROVIDERS:
        p = CATALOG[name]
        targets.append({"provider": name, "base_url": emulator + p.emulator_prefix, "key_env": NO_KEY,
                        "status_page": f"{emulator}/status/{name}"})
    targets.append({"provider": "local", "base_url": local_url})
    for p in CATALOG.values():
        if p.key_env and environ.get(p.key_env) and not p.local and "YOUR-RESOURCE" not in p.base_url:
            targets.append({"provider": p.name, "name": f"{p.name}-live"})  # the real API, its key from env
    return {"defaults": {"interval": "15s"}, "targets": targets, "features": DEMO_FEATURES}


def demo_drills(ports: Ports) -> list[dict]:
    """The storefront's OpenAI-outage and Anthropic-overload drills, short and light, on the running stack."""
    out = []
    for name in ("openai-outage.yaml", "anthropic-overloaded.yaml"):
        path = REPO / "examples" / "storefront" / "drills" / name
        if not path.exists():  # installed without the examples
            continue
        data = yaml.safe_load(path.read_text())
        for feature in data["features"].values():  # eval sets are read relative to the drill file
            if "cases" in feature:
                feature["cases"] = str((path.parent / feature["cases"]).resolve())
        data["product"] = {"base_url": f"http://127.0.0.1:{ports.storefront}"}
        data["proxy"] = {"url": f"http://127.0.0.1:{ports.proxy}", "start": False}
        # One user, a second apart: the bundled 270M model answers one request at a time on two
        # shared cores, and three users already queue it past the storefront's timeout.
        data["load"] = {"users": 1, "spawn_rate": 1, "wait": "1s"}
        for phase, seconds in zip(data["phases"], (10, 30, 10), strict=True):
            phase["duration"] = seconds
        out.append(data)
    return out


async def _every(seconds: float, first: float, action: Callable[[int], None], stop: asyncio.Event) -> None:
    delay, count = first, 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return
        except TimeoutError:
            pass
        await asyncio.to_thread(action, count)
        count += 1
        delay = seconds


def _backfill(engine, config, days: float) -> str:
    """A few days of emulated history for the demo's targets, once (an empty database only)."""
    try:
        from chaos.history import HistoryTarget, generate_history
    except ImportError:
        return "no history backfill (chaos.history missing)"
    from sqlmodel import Session, select

    from monitor.store import migrate
    from monitor.store.models import ProbeRow

    migrate(engine)
    with Session(engine) as session:
        if session.exec(select(ProbeRow.id).limit(1)).first() is not None:
            return "history kept from the last run"
    targets = [HistoryTarget(name=t.name, provider=t.provider, model=t.model, local=t.local)
               for t in config.resolve_targets() if not t.name.endswith("-live")]
    stats = generate_history(engine=engine, targets=targets, days=days, interval_s=60)
    return f"backfilled {days:g} days of emulated history ({stats.raw_rows:,} results)"


@dataclass
class Needed:
    """What `up` cannot run without, watched so that none of it ends unnoticed: the monitor (and the demo's
    drill loop) as tasks, every child process of the stack, and the local model server."""

    stack: Stack
    tasks: dict[str, asyncio.Task] = field(default_factory=dict)
    servers: dict[str, object] = field(default_factory=dict)  # each with running() and log_path
    redact: Callable[[str], str] = str

    def why_ended(self) -> str | None:
        """Why `up` must stop (the first thing found ended, with where to read more), or None."""
        for name, task in self.tasks.items():
            if task.done():
                return self._task_ended(name, task)
        for name, proc in list(self.stack.procs):
            if proc.poll() is not None:
                return f"the {name} exited with status {proc.returncode} (log: {self.stack.logs / f'{name}.log'})"
        for name, server in self.servers.items():
            if not server.running():
                return f"the {name} exited (log: {server.log_path})"
        return None

    def _task_ended(self, name: str, task: asyncio.Task) -> str:
        if task.cancelled():
            return f"the {name} was cancelled"
        exc = task.exception()
        if exc is None:
            return f"the {name} stopped on its own"
        log = self.stack.logs / f"{name.replace(' ', '-')}.log"
        log.write_text(self.redact("".join(traceback.format_exception(exc))))
        first = (str(exc).strip().splitlines() or [""])[0]
        return self.redact(f"the {name} failed: {type(exc).__name__}: {first} (traceback: {log})")


async def _watch(needed: Needed, signalled: asyncio.Task, *, ready: Callable[[], Awaitable[bool]] | None = None,
                 within: float = 0.0, what: str = "") -> None:
    """Returns when ``signalled`` is done (SIGINT/SIGTERM) or, given ``ready``, once it holds. Raises `UpError`
    as soon as something `up` needs has ended, or when ``ready`` does not hold ``within`` seconds."""
    deadline = time.monotonic() + within
    while not signalled.done():
        if (why := needed.why_ended()) is not None:
            raise UpError(why)
        if ready is not None:
            if await ready():
                return
            if time.monotonic() > deadline:
                raise UpError(f"the {what} did not answer within {within:g}s (log: {needed.stack.logs / what}.log)")
        await asyncio.wait([signalled, *needed.tasks.values()], timeout=WATCH_EVERY_S,
                           return_when=asyncio.FIRST_COMPLETED)


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


def _redactor(engine) -> Callable[[str], str]:
    """Hides the database password in anything `up` says about a failure (a driver may quote its URL): in a
    URL always, standing alone when it is long enough not to be part of ordinary words."""
    secret = engine.url.password
    if not secret:
        return str

    def redact(text: str) -> str:
        text = text.replace(f":{secret}@", ":***@")
        return text.replace(secret, "***") if len(secret) >= 6 else text

    return redact


async def run_up(*, config_path: Path | None, ports: Ports, host: str) -> None:
    """Run until SIGINT or SIGTERM, then stop everything it started. Raises `UpError` (after stopping
    everything) when something it needs does not start, or ends: the monitor, the dashboard, the local
    model, the demo's emulator, proxy or storefront; each is looked at every `WATCH_EVERY_S`."""
    from chaos.run import until_signalled
    from monitor.config import load_config
    from monitor.service import MonitorService
    from monitor.store import make_engine
    from monitor.store.db import MONITOR_SQLITE_CACHE_KIB

    stack = Stack(logs=Path(tempfile.mkdtemp(prefix="airisk-up-")))
    needed = Needed(stack)
    demo = config_path is None
    environ = dict(os.environ)
    stop = asyncio.Event()
    signalled: asyncio.Task | None = None
    engine = None
    try:
        if demo:
            _pick_ports(ports)
            local_url, local_note, server = await asyncio.to_thread(_local_model, stack, ports, fallback=True)
            home = await asyncio.to_thread(_demo_home)
            config_path = await asyncio.to_thread(_start_demo, stack, ports, home, local_url, environ)
            store = {"AIRISK_HOME": str(home), "AIRISK_DATABASE_URL": ""}
            dash_env = {**store, "AIRISK_DEMO": "1"}
            engine = make_engine(f"sqlite:///{home / 'airisk.db'}", sqlite_cache_kib=MONITOR_SQLITE_CACHE_KIB)
            config = load_config(config_path)
            print(f"demo: {await asyncio.to_thread(_backfill, engine, config, 3)}", flush=True)
        else:
            config = load_config(config_path)
            local_note, server, store = "not configured (local_model in airisk.yaml)", None, {}
            section = config.local_model
            if section is not None and section.serve:
                ports.local = section.port
                _, local_note, server = await asyncio.to_thread(_local_model, stack, ports, fallback=False,
                                                                section=section, base=config_path.parent)
            dash_env = {}
            engine = make_engine(sqlite_cache_kib=MONITOR_SQLITE_CACHE_KIB)
        if server is not None:
            needed.servers["local model"] = server
        needed.redact = _redactor(engine)
        dash_env["AIRISK_CONFIG"] = str(config_path)  # absolute: the dashboard runs from elsewhere
        stack.start("dashboard", dashboard_command(host, ports.dashboard), env=dash_env, keep=_DASHBOARD_KEEP)
        signalled = asyncio.create_task(until_signalled())
        service = MonitorService(config=config, engine=engine, region="demo" if demo else "")
        needed.tasks["monitor"] = asyncio.create_task(service.run(stop))
        health = f"http://127.0.0.1:{ports.dashboard}/_stcore/health"
        await _watch(needed, signalled, ready=lambda: _answers(health), within=60, what="dashboard")
        if demo:  # evals and drills take turns: both load the one local model
            drills = _drill_runner(stack, ports, store, config_path)
            needed.tasks["demo drills"] = asyncio.create_task(_every(DRILL_EVERY_S / 2, 20, drills, stop))
        mode = "DEMO (emulated providers; write an airisk.yaml for real ones)" if demo else str(config_path)
        print(f"airisk up: {mode}\n  dashboard   http://{host}:{ports.dashboard}\n  monitor     "
              f"{len(service.targets)} targets\n  local model {local_note}\n  logs        {stack.logs}\n"
              "Ctrl-C stops everything.", flush=True)
        await _watch(needed, signalled)
    except (DrillError, LocalModelError) as exc:  # something did not start: say what, not a traceback
        raise UpError(str(exc)) from None
    finally:
        stop.set()
        if signalled is not None:
            signalled.cancel()
        await asyncio.to_thread(stack.interrupt)  # a drill under way stops now, not at its end
        await asyncio.gather(*needed.tasks.values(), return_exceptions=True)
        if engine is not None:
            engine.dispose()
        await asyncio.to_thread(stack.stop)


def _drill_runner(stack: Stack, ports: Ports, env: dict[str, str], config: Path) -> Callable[[int], None]:
    """Runs the demo's eval (turn 0, then every `EVAL_EVERY` turns) and its drills in turn, each in its own
    process (Locust must not share this one), with the demo's store (``env``) and the control token if one
    is set: nothing else of ours."""
    files = []
    for data in demo_drills(ports):
        path = Path(env["AIRISK_HOME"]) / f"drill-{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data))
        files.append(path)

    def run(count: int) -> None:
        if count % EVAL_EVERY == 0:
            stack.run_once(f"eval-{count}", _py("-m", "airisk.cli", "eval", "run", "--config", str(config),
                                                "--cases", str(DEMO_EVAL_CASES)), env=env, timeout=1800)
        elif files:
            stack.run_once(f"drill-{count}", _py("-m", "airisk.cli", "drill", "run", str(files[count % len(files)]),
                                                 "--quiet"), env=env, keep=CONTROL_ENV, timeout=300)

    return run


def _demo_home() -> Path:
    """The demo's own folder (database, config, drill files): real history never mixes with it."""
    home = (Path(os.environ.get("AIRISK_HOME") or "~/.local/share/airisk").expanduser() / "demo").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def _pick_ports(ports: Ports) -> None:
    """The demo's own services move to free ports when the usual ones are taken."""
    for name in ("emulator", "proxy", "storefront", "local"):
        if not _free(getattr(ports, name)):
            setattr(ports, name, free_port())


def _local_model(stack: Stack, ports: Ports, *, fallback: bool, section=None,
                 base: Path | None = None) -> tuple[str, str, object | None]:
    """The model behind its OpenAI-compatible server: its URL, a line for the banner, and the server.

    ``section`` (the config's `local_model`) names the model file (relative to ``base``, the config's
    folder), its threads and alias; unset, the bundled model with every core. With ``fallback`` a model that
    cannot be served gives the emulator's stand-in (and no server); without, `LocalModelError`.
    """
    from monitor.localmodel import LocalModelServer

    try:
        if section is None:
            server = LocalModelServer(port=ports.local)  # the bundled model, every core
        else:
            server = LocalModelServer.from_config(section, model=model_path(section, base), port=ports.local)
        server.start()
        took = server.wait_ready()
    except LocalModelError as exc:
        if not fallback:
            raise LocalModelError(f"the local model did not start: {exc}") from None
        return f"http://127.0.0.1:{ports.emulator}/local/v1", f"emulated ({exc})", None
    stack.adopt(server)
    return (f"{server.url}/v1", f"{server.alias} by llama.cpp at {server.url}/v1 with {server.threads} threads "
            f"(ready in {took:.1f}s)", server)


def model_path(section, base: Path | None) -> Path | None:
    """The config's `local_model.model` as a path (``~`` expanded; relative to ``base``, the config file's
    folder), or None for the bundled model."""
    if section is None or not section.model:
        return None
    path = Path(os.path.expanduser(section.model))  # "~nobody/m.gguf" stays as written (Path's would raise)
    return path if path.is_absolute() or base is None else base / path


def _start_demo(stack: Stack, ports: Ports, home: Path, local_url: str, environ: Mapping[str, str]) -> Path:
    """The demo's emulator, proxy and storefront, healthy; its config written (real providers for the keys
    in ``environ``). None of them gets a provider key."""
    from chaos.demo import DEMO_TIMELINE

    timeline = home / "timeline.json"
    timeline.write_text(json.dumps(DEMO_TIMELINE))
    emulator = f"http://127.0.0.1:{ports.emulator}"
    proc = stack.start("emulator", _py("-m", "airisk.cli", "emulate", "--port", str(ports.emulator),
                                       "--timeline", str(timeline)), keep=CONTROL_ENV)
    stack.wait_healthy("emulator", f"{emulator}/_airisk/health", proc, 30)
    proxy = f"http://127.0.0.1:{ports.proxy}"
    proc = stack.start("proxy", _py("-m", "airisk.cli", "proxy", "--port", str(ports.proxy), "--emulator", emulator,
                                    "--route", f"local={local_url}", "--store"),
                       env={"AIRISK_HOME": str(home), "AIRISK_DATABASE_URL": ""}, keep=CONTROL_ENV)
    stack.wait_healthy("proxy", f"{proxy}/_airisk/health", proc, 30)
    # No provider key: the demo's storefront reaches the emulated providers through the proxy only.
    proc = stack.start("storefront", _py("-m", "examples.storefront", "--port", str(ports.storefront)),
                       env={"STOREFRONT_OPENAI_BASE_URL": f"{proxy}/openai",
                            "STOREFRONT_ANTHROPIC_BASE_URL": f"{proxy}/anthropic",
                            "STOREFRONT_LOCAL_BASE_URL": f"{proxy}/local", "STOREFRONT_AI_TIMEOUT": "10"}, cwd=REPO)
    stack.wait_healthy("storefront", f"http://127.0.0.1:{ports.storefront}/healthz", proc, 30)
    config = home / "airisk.yaml"
    config.write_text("# Written by `airisk up` for its demo; edit a copy, not this file.\n"
                      + yaml.safe_dump(demo_config(ports, local_url=local_url, environ=environ), sort_keys=False))
    return config


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
