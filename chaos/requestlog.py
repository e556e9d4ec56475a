"""The request log of a fault injection point (the proxy, the transport, the emulator): what
each request met, for drills and dependency discovery, read through the control API's ``log``.

An entry is a dict: ``id`` (growing), ``at`` (wall clock; the proxy's: when the request was
read whole and its faults decided), ``route``, ``method``, ``path``,
``upstream`` (URL), ``model``, ``feature`` (the ``X-AIRisk-Feature`` header), ``stream``,
``status`` (None when no response was sent), ``faults`` (the fault types applied),
``ttfb_ms``, ``total_ms`` (from when the request's head came, a moment before the proxy's
``at``), and where it applies ``broken`` (the stream fault that ended the
answer) and ``error``. The emulator's entries have its own fields (`chaos.emulator`: ``nonce``,
``arrived_mono_ns``, ``first_token_mono_ns``, ... which the benches read) and the same ``id``.

The proxy keeps an entry's ``faults`` as a tuple (empty for most): an entry then holds no
container, so CPython leaves it out of garbage collection, and a full ring of 10,000 entries adds
nothing to a collection's pause (measured: bench/proxy_overhead.py, docs/BENCHMARKS.md). Every
read (`since`, iteration, indexing) gives ``faults`` as a list, as it always was.

It also reads as the ``deque`` the emulator kept before (``append``, iteration, ``log[-1]``), so
code that appended to or read that deque works unchanged.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

LOG_SIZE = 10_000


class RequestLog:
    """The latest requests, oldest dropped first; ids grow, so a reader can ask for what is new."""

    def __init__(self, size: int = LOG_SIZE, sink: Callable[[dict[str, Any]], None] | None = None,
                 entries: Iterable[dict[str, Any]] = ()) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self.sink = sink  # called with each finished entry (e.g. to store it through `monitor`)
        for entry in entries:
            self.open(entry)

    @property
    def maxlen(self) -> int | None:
        return self._entries.maxlen

    def open(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry["id"] = next(self._ids)
        self._entries.append(entry)
        return entry

    append = open  # the deque's name for it

    def done(self, entry: dict[str, Any]) -> None:
        if self.sink is not None:
            self.sink(entry)

    def since(self, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        entries = [e for e in self._entries if e["id"] > after] if after else list(self._entries)
        return [_read(e) for e in (entries[-limit:] if limit else entries)]

    def clear(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        return count

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(_read, self._entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return _read(self._entries[index])


def _read(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as readers see it: ``faults`` a list (a copy when kept as a tuple)."""
    faults = entry.get("faults")
    return {**entry, "faults": list(faults)} if type(faults) is tuple else entry
