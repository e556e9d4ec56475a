"""Real traffic as eval material: ``airisk proxy --capture FEATURE[:N]`` (opt-in, per feature).

For the features named, and only those (the request's ``X-AIRisk-Feature`` header), the proxy keeps
the request body a feature sent and the answer the upstream gave it, and stores both, redacted, in
the monitor's database (`monitor.store.capture`). Nothing else is ever captured: no headers (keys
travel there), no request without the header, no feature not named, no request a fault was applied to
(its answer is the fault's, not the provider's), no answer but a 200.

The proxy's hot path does only cheap things: `Capture.open` decides (the feature is named, its
quota of N not reached, its rate within `RATE`, the body within `MAX_BODY`, the buffer not full) and
reserves one of the N slots before anything is buffered; the answer's bytes are kept as they are relayed (up to
`MAX_STREAM`); `Capture.done` queues the capture in memory, bounded (`MAX_PENDING_BYTES`: beyond it a
capture is dropped and counted). Everything else runs off the event loop, once a second, in a
thread: the answer reassembled from the captured bytes by the route's dialect (`probes.framing`, the
dialect's ``parse_event``/``parse_body``, as a probe reads it), the body parsed, redaction and the
write (the ``write`` function given, `chaos.proxystore.capture_writer`).

Why a rate as well as N: reading, redacting and writing one capture costs about a millisecond of
CPU in the proxy's process (the writer thread holds the GIL while it works), so taking every request
of a busy feature would slow the proxy down while it lasts (bench/capture_overhead.py measures it).
At most `RATE` a second a feature, it costs at most about 1% of a core, and the N cases are spread
over time (many users' requests) instead of being one burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from monitor.store.capture import Capture as Captured
from probes.dialects import DIALECTS, Chunk
from probes.dialects.base import merge
from probes.framing import NDJSONParser, SSEParser

log = logging.getLogger(__name__)
DEFAULT_N = 200
RATE = 10.0  # captures a second per feature, at most (a burst of this many at once)
MAX_N = 100_000
MAX_BODY = 64 * 1024  # request body bytes captured; a larger body is not captured (counted)
MAX_STREAM = 1 << 20  # answer bytes held per capture; a longer answer is not captured (counted)
MAX_DECODED = 4 << 20  # a compressed answer is inflated up to this much
MAX_PENDING_BYTES = 32 << 20  # captured bytes waiting for the writer
_SSE_STARTS = (b"data", b"event", b"id:", b"retry:", b":")


def parse_capture(spec: str) -> tuple[str, int]:
    """``FEATURE`` or ``FEATURE:N`` (at most N captures of that feature; default `DEFAULT_N`); ValueError
    names the problem."""
    name, sep, raw = spec.rpartition(":")
    feature, n = (name, raw) if sep and raw.isascii() and raw.isdigit() else (spec, str(DEFAULT_N))
    feature = feature.strip()
    if not feature:
        raise ValueError(f"--capture {spec!r}: expected FEATURE or FEATURE:N, e.g. --capture support_chat:200")
    if not 1 <= int(n) <= MAX_N:
        raise ValueError(f"--capture {spec!r}: N must be 1 to {MAX_N}")
    return feature, int(n)


class Tap:
    """One request being captured: its body, and the answer's bytes as they are relayed."""

    __slots__ = ("at", "body", "chunks", "complete", "content_type", "cut", "dialect", "encoding", "feature",
                 "model", "path", "route", "size", "status")

    def __init__(self, *, feature: str, route: str, dialect: str, path: str, model: str | None, body: bytes) -> None:
        self.at = time.time()
        self.feature, self.route, self.dialect, self.path, self.model, self.body = feature, route, dialect, path, \
            model, body
        self.chunks: list[bytes] = []
        self.size = 0
        self.cut = False  # the answer ran past MAX_STREAM: not captured
        self.complete = False  # the whole answer reached the product
        self.status: int | None = None
        self.content_type = b""
        self.encoding = b""

    def add(self, data: bytes) -> None:
        if self.cut:
            return
        self.size += len(data)
        if self.size > MAX_STREAM:
            self.cut = True
            self.chunks = []
            return
        self.chunks.append(data)


def _inflate(encoding: bytes, data: bytes) -> bytes | None:
    encoding = encoding.strip().lower()
    if encoding in (b"", b"identity"):
        return data
    if encoding not in (b"gzip", b"x-gzip", b"deflate"):
        return None  # br, zstd: the proxy asks captured requests' upstreams for identity; not read
    for wbits in ((zlib.MAX_WBITS | 32,) if encoding != b"deflate" else (zlib.MAX_WBITS, -zlib.MAX_WBITS)):
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(data, MAX_DECODED)
        except zlib.error:
            continue
        return None if inflater.unconsumed_tail else out
    return None


def answer_text(dialect_name: str, content_type: bytes, encoding: bytes, raw: bytes) -> str | None:
    """The answer's text from a response body as the upstream sent it: a stream in the dialect's framing,
    or one JSON document (a request that did not stream); None when it cannot be read, or reports an
    error."""
    dialect = DIALECTS[dialect_name]
    data = _inflate(encoding, raw)
    if data is None:
        return None
    media = content_type.split(b";", 1)[0].strip().lower()
    whole = media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
    try:
        if whole and (dialect.framing == "ndjson" or not data.lstrip().startswith(_SSE_STARTS)):
            chunk: Chunk = dialect.parse_body(data)
        else:
            parser = SSEParser() if dialect.framing == "sse" else NDJSONParser()
            events = parser.feed(data) + parser.close()
            chunk = merge([dialect.parse_event(event) for event in events])
    except ValueError:
        return None
    return None if chunk.error is not None else chunk.text


def read_capture(tap: Tap) -> Captured | None:
    """The capture as stored (before redaction), or None: a body that is not a JSON object, an answer that
    cannot be read or is empty."""
    try:
        request = json.loads(tap.body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(request, dict):
        return None
    answer = answer_text(tap.dialect, tap.content_type, tap.encoding, b"".join(tap.chunks))
    if not answer or not answer.strip():
        return None
    return Captured(at=datetime.fromtimestamp(tap.at, UTC), feature=tap.feature, route=tap.route, path=tap.path,
                    model=tap.model, request=request, answer=answer, status=tap.status)


class Capture:
    """The features to capture and their quotas, the captures waiting to be written, and the writer.

    ``limits``: feature -> N. ``stored``: captures already in the database per feature (they count
    against N). ``write``: stores a batch (called in a thread); returns how many it stored. ``every``:
    seconds between writes. ``max_pending_bytes``: no capture is queued once this much waits. ``rate``:
    captures a second per feature, at most (None: no limit).
    One event loop owns it (the proxy's), except ``write``, which runs in a worker thread."""

    def __init__(self, limits: Mapping[str, int], *, write: Callable[[list[Captured]], int] | None = None,
                 stored: Mapping[str, int] | None = None, max_body: int = MAX_BODY,
                 max_pending_bytes: int = MAX_PENDING_BYTES, every: float = 1.0,
                 rate: float | None = RATE) -> None:
        self.limits = dict(limits)
        self.taken: Counter[str] = Counter({f: n for f, n in (stored or {}).items() if f in self.limits})
        self.max_body = max_body
        self.max_pending_bytes = max_pending_bytes
        self.every = every
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # feature -> (tokens, at): a token bucket
        # written, over_rate, dropped, too_large, too_long, unreadable, not_ok, lost
        self.stats: Counter[str] = Counter()
        self._write = write
        self._pending: deque[Tap] = deque()
        self._pending_bytes = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    # -- the hot path ------------------------------------------------------------------------------

    def open(self, feature: str, *, route: str, dialect: str, path: str, model: str | None, body: bytes) -> Tap | None:
        """A tap for this request if it is to be captured (its slot reserved), else None."""
        limit = self.limits.get(feature)
        if limit is None or self.taken[feature] >= limit:
            return None
        if len(body) > self.max_body:
            self.stats["too_large"] += 1
            return None
        if self._pending_bytes >= self.max_pending_bytes:
            self.stats["dropped"] += 1
            return None
        if self.rate is not None:
            now = time.monotonic()
            burst = max(self.rate, 1.0)
            tokens, at = self._buckets.get(feature, (burst, now))
            tokens = min(burst, tokens + (now - at) * self.rate)
            if tokens < 1:
                self._buckets[feature] = (tokens, now)
                self.stats["over_rate"] += 1
                return None
            self._buckets[feature] = (tokens - 1, now)
        self.taken[feature] += 1
        return Tap(feature=feature, route=route, dialect=dialect, path=path, model=model, body=body)

    def done(self, tap: Tap) -> None:
        """The request has ended: its capture is queued if the whole answer was a 200, else its slot is freed."""
        reason = None if tap.complete and tap.status == 200 else "not_ok"
        if tap.cut:
            reason = "too_long"
        size = len(tap.body) + tap.size
        if reason is None and self._pending_bytes >= self.max_pending_bytes:
            reason = "dropped"
        if reason is not None:
            self.stats[reason] += 1
            self.taken[tap.feature] -= 1
            return
        self._pending.append(tap)
        self._pending_bytes += size

    # -- off the hot path --------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._pending)

    def summary(self) -> dict:
        """What the control API shows: per feature the quota and how much of it is used, and the counts."""
        return {"features": {f: {"limit": n, "taken": self.taken[f]} for f, n in sorted(self.limits.items())},
                "pending": self.pending, **{k: self.stats[k] for k in sorted(self.stats)}}

    def _read(self, batch: list[Tap]) -> tuple[list[str], int]:
        captures: list[Captured] = []
        unread: list[str] = []
        for tap in batch:
            capture = read_capture(tap)
            if capture is None:
                unread.append(tap.feature)
            else:
                captures.append(capture)
        written = self._write(captures) if captures and self._write is not None else 0
        return unread, written

    async def flush(self) -> None:
        """Reads and writes what is queued, in a worker thread. A capture that cannot be read frees its
        slot; a batch the database refuses is lost (counted, logged, slots freed): captures are samples,
        and the next requests will be captured instead."""
        if not self._pending:
            return
        batch = list(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        try:
            unread, written = await asyncio.to_thread(self._read, batch)
        except Exception as exc:
            self.stats["lost"] += len(batch)
            for tap in batch:
                self.taken[tap.feature] -= 1
            log.warning("capture: %d captures could not be stored (%s)", len(batch),
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            return
        for feature in unread:
            self.taken[feature] -= 1
        self.stats["unreadable"] += len(unread)
        self.stats["written"] += written

    async def run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every)
            await self.flush()

    def start(self) -> None:
        """Starts the writer in the running loop (the proxy does, on its start)."""
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Writes what is left and stops the writer."""
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None
        await self.flush()
