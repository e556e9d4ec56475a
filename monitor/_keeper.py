"""The keeper: the first process of every child airisk starts (`monitor.children.spawn`).

``python -I _keeper.py PARENT_PID FD GRACE -- COMMAND...`` (standard library only, so it runs
with ``-I`` whatever the environment). It is the leader of the child's own process group and
session, starts COMMAND in that group, and then:

- tells the parent COMMAND's pid on the socket ``FD`` (the other end stays in the parent);
- exits as COMMAND exits, with its status (a signal death is re-raised on itself), so the
  parent's ``wait()`` sees COMMAND's own status;
- when the parent is gone (the socket reads end-of-file: every descriptor of a process closes
  when it dies, however it dies and whichever thread started us; or ``getppid()`` changed),
  sends SIGTERM to the whole group, and SIGKILL after GRACE seconds.

SIGTERM, SIGINT and SIGHUP are only noted: the parent signals the whole group, so COMMAND has
them already; a keeper that died of them would orphan COMMAND.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time

POLL = 0.1


def _gone(sock: socket.socket, parent: int) -> bool:
    if os.getppid() != parent:
        return True
    readable, _, _ = select.select([sock], [], [], POLL)
    if not readable:
        return False
    try:
        return sock.recv(64) == b""
    except OSError:
        return True


def _exit_as(code: int) -> int:
    if code < 0:  # died of a signal: die of the same one, so the parent reads the same status
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP take no handler, and need none
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
        return 128 - code
    return code


def main(argv: list[str]) -> int:
    parent, fd, grace = int(argv[1]), int(argv[2]), float(argv[3])
    command = argv[5:]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    sock = socket.socket(fileno=fd)
    if os.getppid() != parent:  # the parent died before we got here
        return 1
    try:
        child = subprocess.Popen(command)  # same group; environment, folder and output as given to us
    except OSError as exc:
        print(f"airisk: cannot start {command[0]!r}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 127
    with contextlib.suppress(OSError):
        sock.sendall(f"{child.pid}\n".encode())
    while True:
        code = child.poll()
        if code is not None:
            return _exit_as(code)
        if _gone(sock, parent):
            os.killpg(0, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(grace)
            os.killpg(0, signal.SIGKILL)  # the stragglers of the group, and this keeper with them
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
