"""Child processes that die with airisk and get only the environment they need.

`spawn` starts a command as a `Child`: in a session and process group of its own (a terminal's
Ctrl-C reaches it only through airisk, once), behind a small keeper process
(`monitor/_keeper.py`, the group's leader) that watches airisk from the child's side:

- **airisk dies, however it dies** (SIGKILL included): the keeper holds one end of a socket
  pair whose other end only airisk holds; the kernel closes it when airisk's process ends, the
  keeper reads end-of-file at once (and rechecks ``getppid()`` every 0.1 s besides), sends
  SIGTERM to the whole group and SIGKILL after the grace. No ``preexec_fn`` (unsafe in a
  process with threads) and no PR_SET_PDEATHSIG: that one fires when the *thread* that started
  the child ends, not the process, and does not exist outside Linux. This works the same on
  Linux and macOS (any POSIX system with ``select`` and process groups); Windows is not
  supported. What it cannot cover: the keeper itself killed with SIGKILL leaves the command
  running until `Child.stop` (which signals the group, not the keeper) or a reboot.
- **`Child.stop`**: SIGTERM to the group (the command and everything it started in it), SIGKILL
  to the group after ``grace`` seconds, and to any straggler left in it after the command ended.
- **the environment** is an allow-list (`child_env`): PATH, HOME, the locale, TMPDIR, PYTHON*
  and the like, plus only the names the caller keeps and the values it sets. A provider key in
  airisk's environment (OPENAI_API_KEY, ...) never reaches a demo storefront, a proxy or Locust.

The handle reads like `subprocess.Popen` (``pid``, ``poll``, ``wait``, ``returncode``,
``send_signal``, ``terminate``, ``kill``); signals go to the group. ``pid`` is the keeper's
(also the group's id); ``target_pid`` is the command's own. Keep the handle while the command
should run: dropped (garbage-collected), its end of the socket closes and the keeper stops the
command, as if airisk had died.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

KEEPER = Path(__file__).resolve().with_name("_keeper.py")
GRACE = 10.0

BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "TMPDIR",
            "PYTHON*", "VIRTUAL_ENV")
"""What every child gets: where programs are, who and where it runs, text encoding, Python's own settings."""
NETWORK_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy",
               "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
"""For a child that calls out past loopback (the fault proxy in front of a real provider)."""
STORE_ENV = ("AIRISK_HOME", "AIRISK_DATABASE_URL")
"""For a child that writes or reads airisk's database."""
CONTROL_ENV = ("AIRISK_CONTROL_TOKEN",)
"""For a fault proxy or emulator (their control API) and for a drill runner (their client)."""


def child_env(*, keep: Iterable[str] = (), env: Mapping[str, str] | None = None,
              environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: `BASE_ENV` and the names in ``keep`` (shell patterns such as
    ``STOREFRONT_*`` allowed) taken from ``environ`` (default ``os.environ``), then ``env`` set over them."""
    environ = os.environ if environ is None else environ
    patterns = (*BASE_ENV, *keep)
    out = {name: value for name, value in environ.items()
           if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)}
    out.update(env or {})
    return out


class Child:
    """A command started by `spawn`; stop it with `stop` (or it dies with this process)."""

    def __init__(self, proc: subprocess.Popen, sock: socket.socket, grace: float) -> None:
        self._proc = proc
        self._sock = sock  # this process's end: its close (our death) tells the keeper to stop the group
        self.grace = grace
        self._target: int | None = None

    @property
    def pid(self) -> int:
        """The keeper's pid, which is also the process group's id."""
        return self._proc.pid

    @property
    def target_pid(self) -> int | None:
        """The command's own pid (None if it could not be started); waits up to 10 s for the keeper to say."""
        if self._target is None and self._sock.fileno() != -1:
            self._sock.settimeout(10)
            data = b""
            with contextlib.suppress(OSError):
                while not data.endswith(b"\n"):
                    chunk = self._sock.recv(32)
                    if not chunk:
                        break
                    data += chunk
            self._target = int(data) if data.strip().isdigit() else 0
        return self._target or None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def poll(self) -> int | None:
        return self._ended(self._proc.poll())

    def wait(self, timeout: float | None = None) -> int:
        """The command's exit status (negative: the signal it died of); `subprocess.TimeoutExpired` on timeout."""
        return self._ended(self._proc.wait(timeout))

    def _ended(self, code: int | None) -> int | None:
        if code is not None:  # the keeper is gone: our end of its socket has nothing left to tell
            self._sock.close()
        return code

    def send_signal(self, sig: int) -> None:
        """``sig`` to the whole group: the command and what it started (the keeper only notes it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def stop(self, grace: float | None = None) -> int:
        """SIGTERM to the group, SIGKILL after ``grace`` seconds (default: the spawn's), and SIGKILL to
        whatever is left in the group once the command has ended; its exit status."""
        if self._proc.poll() is None:
            self.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(self.grace if grace is None else grace)
        self.kill()  # stragglers (the command's own children), or everything if it outlived the grace
        return self.wait()

    def __repr__(self) -> str:
        return f"Child(pid={self.pid}, returncode={self.returncode})"


def spawn(command: Sequence[str], *, keep: Iterable[str] = (), env: Mapping[str, str] | None = None,
          cwd: str | os.PathLike[str] | None = None, stdout: IO[Any] | int | None = None,
          stderr: IO[Any] | int | None = None, stdin: IO[Any] | int | None = subprocess.DEVNULL,
          grace: float = GRACE) -> Child:
    """Starts ``command`` as a `Child` (see the module docstring), with ``child_env(keep=keep, env=env)``
    as its whole environment. ``stdin``, ``stdout`` and ``stderr`` as `subprocess.Popen` takes them
    (``stdin`` defaults to /dev/null); ``grace``: how long the group gets between SIGTERM and SIGKILL."""
    if not command:
        raise ValueError("command: empty")
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", str(KEEPER), str(os.getpid()), str(theirs.fileno()), f"{grace:g}", "--",
             *map(str, command)],
            env=child_env(keep=keep, env=env), cwd=cwd, stdout=stdout, stderr=stderr, stdin=stdin,
            pass_fds=(theirs.fileno(),), start_new_session=True)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return Child(proc, ours, grace)


__all__ = ["BASE_ENV", "CONTROL_ENV", "NETWORK_ENV", "STORE_ENV", "Child", "child_env", "spawn"]
