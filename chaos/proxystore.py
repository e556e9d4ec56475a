"""Keep the fault proxy's request log in the monitor's database (``airisk proxy --store``).

Entries are batched and written off the event loop once a second, so a slow database
never delays a proxied request; while the database is away they wait in memory (up to a
bound, then the oldest are dropped and counted) and are written when it returns.

Entries are the proxy's record of requests anyone can send, so each is coerced to its
columns first (`monitor.store.proxylog.proxy_row`); a batch the database still refuses for
its data (not for being away) is written row by row, and a row refused on its own is set
aside in ``<spill dir>/proxy-rejected-<pid>.rejected`` (JSON lines, as `ResultWriter` sets
aside results), so one bad row can never hold back the rows after it.

`capture_writer` and `stored_captures` serve ``airisk proxy --capture`` (`chaos.proxycapture`): the
captures are written redacted through `monitor.store.capture`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.quality.redact import Redactor
from monitor.store.capture import Capture, counts, record_captures
from monitor.store.db import DEFAULT_HOME
from monitor.store.proxylog import write_proxy_requests

log = logging.getLogger(__name__)
BATCH = 5_000  # rows per transaction
# "The database is away" (retry later), as opposed to "the database refuses these rows".
_AWAY = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError)


def _away(exc: BaseException) -> bool:
    return isinstance(exc, _AWAY) or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)


class LogStore:
    def __init__(self, engine: Engine, *, source: str = "", max_pending: int = 100_000,
                 reject_dir: Path | None = None) -> None:
        self._engine = engine
        self._source = source
        self._pending: deque[dict[str, Any]] = deque(maxlen=max_pending)
        home = Path(os.environ.get("AIRISK_HOME") or DEFAULT_HOME).expanduser()
        self.reject_dir = Path(reject_dir) if reject_dir is not None else home / "spill"
        self.written = 0
        self.dropped = 0
        self.rejected = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def sink(self, entry: dict[str, Any]) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(dict(entry))

    def _write(self, batch: list[dict[str, Any]]) -> int:
        with Session(self._engine) as session:
            count = write_proxy_requests(session=session, entries=batch, source=self._source)
            session.commit()
        return count

    def _write_each(self, batch: list[dict[str, Any]]) -> int:
        """Row by row, setting aside each row refused for its data; returns how many rows were
        dealt with (written or set aside) before the database went away, if it did."""
        for done, entry in enumerate(batch):
            try:
                self.written += self._write([entry])
            except Exception as exc:
                if _away(exc):
                    return done
                self._reject(entry, exc)
        return len(batch)

    def _reject(self, entry: dict[str, Any], exc: BaseException) -> None:
        self.rejected += 1
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        try:
            line = json.dumps({"entry": entry, "error": reason}, default=repr)
        except (ValueError, TypeError, RecursionError):
            line = json.dumps({"entry": repr(entry)[:5000], "error": reason})
        try:
            self.reject_dir.mkdir(parents=True, exist_ok=True)
            with (self.reject_dir / f"proxy-rejected-{os.getpid()}.rejected").open("a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as err:
            log.error("proxy log: a refused row could not be set aside (%s) and is lost", err)
            return
        log.error("proxy log: a row the database refused was set aside in %s: %s", self.reject_dir, reason)

    def _requeue(self, rows: list[dict[str, Any]]) -> None:
        """Puts rows that were not written back in front of the newer ones, dropping the oldest
        beyond the bound (counted)."""
        room = (self._pending.maxlen or 0) - len(self._pending)
        if len(rows) > room:
            self.dropped += len(rows) - room
            rows = rows[len(rows) - room:] if room > 0 else []
        self._pending.extendleft(reversed(rows))

    async def flush(self) -> None:
        """Writes what is pending; keeps it pending while the database is away."""
        while self._pending:
            # Taken out of the queue while written: entries logged meanwhile queue behind it.
            batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            try:
                self.written += await asyncio.to_thread(self._write, batch)
                continue
            except Exception as exc:
                if _away(exc):
                    self._requeue(batch)
                    log.warning("proxy log: database unavailable, %d entries held (%s)", len(self._pending),
                                str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                    return
                log.error("proxy log: a batch was refused (%s); writing its rows one by one",
                          str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            done = await asyncio.to_thread(self._write_each, batch)
            if done < len(batch):  # the database went away meanwhile
                self._requeue(batch[done:])
                return

    async def run(self, stop: asyncio.Event, every: float = 1.0) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            await self.flush()


def capture_writer(engine: Engine, redactor: Redactor) -> Callable[[list[Capture]], int]:
    """The ``write`` of a `chaos.proxycapture.Capture`: one transaction a batch, each capture redacted by
    ``redactor`` on its way in. Runs in a worker thread."""

    def write(captures: list[Capture]) -> int:
        with Session(engine) as session:
            stored = record_captures(session=session, captures=captures, redactor=redactor)
            session.commit()
        return stored

    return write


def stored_captures(engine: Engine, features: Iterable[str]) -> dict[str, int]:
    """Captures already stored per feature: they count against each feature's N."""
    with Session(engine) as session:
        return counts(session=session, features=features)
