"""`airisk up`: the main job. The monitor, the local model and the dashboard, on loopback.

With an `airisk.yaml` it watches what the file says. Without one it runs a labelled demo
(its own database under ``$AIRISK_HOME/demo``): the emulator's providers with a realistic
incident script (`chaos.demo`), the real local model, the fault proxy, and the storefront
example with its four features; a few days of emulated history are backfilled on the first
run, and drills run against the storefront now and then, so every dashboard page has
something true to show within a minute. Provider keys in the environment (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``, ...) add those real providers to the demo's targets.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from chaos.drill.runner import Stack, free_port
from probes.catalog import CATALOG

REPO = Path(__file__).resolve().parents[1]  # where `examples` (the storefront) is importable
DEMO_PROVIDERS = ("openai", "anthropic", "gemini", "mistral", "groq", "cohere", "deepseek")
NO_KEY = "AIRISK_DEMO_NO_KEY"  # an unset variable: emulated targets never send a real key to the emulator
DRILL_EVERY_S = 15 * 60
DEMO_FEATURES = {
    "description": {"criticality": "high", "chain": [{"backend": "openai"}],
                    "description": "product descriptions (OpenAI only)"},
    "chat": {"criticality": "critical", "chain": [{"backend": "anthropic"}, {"backend": "local"}],
             "description": "support chat (Anthropic, the local model as fallback)"},
    "tags": {"criticality": "medium", "chain": [{"backend": "openai"}, {"degraded": "heuristic", "quality": 0.6}],
             "description": "review tagging (OpenAI, a keyword heuristic as fallback)"},
    "search": {"criticality": "low", "chain": [{"backend": "local"}], "description": "search rerank (local model)"},
}


@dataclass
class Ports:
    dashboard: int = 8501
    emulator: int = 8470
    proxy: int = 8480
    storefront: int = 8600
    local: int = 8011


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


async def run_up(*, config_path: Path | None, ports: Ports, host: str) -> None:
    from airisk.runtime import _until_signalled
    from monitor.config import load_config
    from monitor.service import MonitorService
    from monitor.store import make_engine

    stack = Stack(logs=Path(tempfile.mkdtemp(prefix="airisk-up-")))
    demo = config_path is None
    env = dict(os.environ)
    try:
        if demo:
            _pick_ports(ports)
            local_url, local_note = await asyncio.to_thread(_local_model, stack, ports, fallback=True)
            home = await asyncio.to_thread(_demo_home)
            config_path = await asyncio.to_thread(_start_demo, stack, ports, home, local_url)
            env.update(AIRISK_HOME=str(home), AIRISK_DATABASE_URL="", AIRISK_DEMO="1")
            engine = make_engine(f"sqlite:///{home / 'airisk.db'}")
            config = load_config(config_path)
            print(f"demo: {await asyncio.to_thread(_backfill, engine, config, 3)}", flush=True)
        else:
            config = load_config(config_path)
            local_note = "not configured (local_model in airisk.yaml)"
            if config.local_model is not None and config.local_model.serve:
                ports.local = config.local_model.port
                _, local_note = await asyncio.to_thread(_local_model, stack, ports, fallback=False)
            engine = make_engine()
        env["AIRISK_CONFIG"] = str(config_path)  # absolute: the dashboard runs from elsewhere
        dash = stack.start("dashboard", dashboard_command(host, ports.dashboard), env=env)
        stop = asyncio.Event()
        service = MonitorService(config=config, engine=engine, region="demo" if demo else "")
        tasks = [asyncio.create_task(service.run(stop))]
        await asyncio.to_thread(stack.wait_healthy, "dashboard", f"http://127.0.0.1:{ports.dashboard}/_stcore/health",
                                dash, 60)
        if demo:
            tasks.append(asyncio.create_task(_every(DRILL_EVERY_S / 2, 20, _drill_runner(stack, ports, env), stop)))
        mode = "DEMO (emulated providers; write an airisk.yaml for real ones)" if demo else str(config_path)
        print(f"airisk up: {mode}\n  dashboard   http://{host}:{ports.dashboard}\n  monitor     "
              f"{len(service.targets)} targets\n  local model {local_note}\n  logs        {stack.logs}\n"
              "Ctrl-C stops everything.", flush=True)
        await _until_signalled()
        stop.set()
        await asyncio.to_thread(stack.interrupt)  # a drill under way stops now, not at its end
        await asyncio.gather(*tasks, return_exceptions=True)
        engine.dispose()
    finally:
        await asyncio.to_thread(stack.stop)


def _drill_runner(stack: Stack, ports: Ports, env: dict[str, str]) -> Callable[[int], None]:
    """Runs the demo's drills in turn, each in its own process (Locust must not share this one)."""
    files = []
    for data in demo_drills(ports):
        path = Path(env["AIRISK_HOME"]) / f"drill-{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data))
        files.append(path)

    def run(count: int) -> None:
        if files:
            stack.run_once(f"drill-{count}", _py("-m", "airisk.cli", "drill", "run", str(files[count % len(files)]),
                                                 "--quiet"), env=env, timeout=300)

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


def _local_model(stack: Stack, ports: Ports, *, fallback: bool) -> tuple[str, str]:
    """The bundled model behind its OpenAI-compatible server; or, with ``fallback``, the emulator's stand-in."""
    from monitor.localmodel import LocalModelError, LocalModelServer, default_model_path

    try:
        server = LocalModelServer(model=default_model_path(), port=ports.local)
        server.start()
        took = server.wait_ready()
    except LocalModelError as exc:
        if not fallback:
            return "", f"not started ({exc})"
        return f"http://127.0.0.1:{ports.emulator}/local/v1", f"emulated ({exc})"
    stack.adopt(server)
    return f"{server.url}/v1", f"{server.alias} by llama.cpp at {server.url}/v1 (ready in {took:.1f}s)"


def _start_demo(stack: Stack, ports: Ports, home: Path, local_url: str) -> Path:
    from chaos.demo import DEMO_TIMELINE

    timeline = home / "timeline.json"
    timeline.write_text(json.dumps(DEMO_TIMELINE))
    emulator = f"http://127.0.0.1:{ports.emulator}"
    proc = stack.start("emulator", _py("-m", "airisk.cli", "emulate", "--port", str(ports.emulator),
                                       "--timeline", str(timeline)))
    stack.wait_healthy("emulator", f"{emulator}/_airisk/health", proc, 30)
    proxy = f"http://127.0.0.1:{ports.proxy}"
    proc = stack.start("proxy", _py("-m", "airisk.cli", "proxy", "--port", str(ports.proxy), "--emulator", emulator,
                                    "--route", f"local={local_url}", "--store"),
                       env={"AIRISK_HOME": str(home), "AIRISK_DATABASE_URL": ""})
    stack.wait_healthy("proxy", f"{proxy}/_airisk/health", proc, 30)
    proc = stack.start("storefront", _py("-m", "examples.storefront", "--port", str(ports.storefront)), env={
        "STOREFRONT_OPENAI_BASE_URL": f"{proxy}/openai", "STOREFRONT_ANTHROPIC_BASE_URL": f"{proxy}/anthropic",
        "STOREFRONT_LOCAL_BASE_URL": f"{proxy}/local", "STOREFRONT_AI_TIMEOUT": "10"}, cwd=REPO)
    stack.wait_healthy("storefront", f"http://127.0.0.1:{ports.storefront}/healthz", proc, 30)
    config = home / "airisk.yaml"
    config.write_text("# Written by `airisk up` for its demo; edit a copy, not this file.\n"
                      + yaml.safe_dump(demo_config(ports, local_url=local_url, environ=dict(os.environ)),
                                       sort_keys=False))
    return config


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
