"""How a 200 answer's body is read into a running probe: as a stream, or as a whole JSON body.

A streaming request normally gets a stream in the dialect's framing (SSE or NDJSON), read
event by event, each stamped with the arrival time of the bytes that completed it. A
gateway that ignored ``stream`` answers one ``application/json`` document instead: it is
read whole with `Dialect.parse_body`, and its time to first token is the arrival of its
last byte (the answer is usable only then). A stream mislabelled as JSON still starts with
an SSE field, which no JSON value does, so the first bytes tell the two apart.

Everything read is bounded: the framing caps a line and an event, a JSON answer is capped
alike (`MAX_EVENT`), an error body at `_ERROR_BODY_LIMIT`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx

from probes.framing import MAX_EVENT, NDJSONParser, SSEParser

if TYPE_CHECKING:
    from probes.runner import _Run

_ERROR_BODY_LIMIT = 64 * 1024
_BODY_LIMIT = MAX_EVENT  # a non-streamed answer is one event
_SSE_STARTS = (b"data", b"event", b"id:", b"retry:", b":")
_SNIFF = 6  # bytes enough to tell the two apart


async def read_answer(dialect, response: httpx.Response, run: _Run, deadline, loop, total_deadline: float,
                      stall: float, first_token: asyncio.Event | None) -> None:
    """Read a 200 answer into ``run``: a stream in the dialect's framing, or a whole JSON body (a server
    that did not stream). Raises ValueError for bytes that cannot be read (the probe's MALFORMED)."""
    reads = response.aiter_bytes()
    head = bytearray()
    if _is_json(response.headers.get("content-type", "")):
        start = None  # where the first non-blank byte is
        async for data in reads:
            if start is None and (rest := data.lstrip()):
                start = len(head) + len(data) - len(rest)
            head += data
            if (start is not None and len(head) - start >= _SNIFF) or len(head) > _BODY_LIMIT:
                break
        # An SSE stream mislabelled as JSON still starts with a field ("data:", "event:", ":"),
        # which no JSON value does; an NDJSON body is read whole either way (parse_body splits it).
        if dialect.framing == "ndjson" or not head[start or 0:].startswith(_SSE_STARTS):
            await _read_body(dialect, reads, bytes(head), run, first_token)
            return
    await _read_stream(dialect, reads, bytes(head), run, deadline, loop, total_deadline, stall, first_token)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def _read_body(dialect, reads, head: bytes, run: _Run, first_token: asyncio.Event | None) -> None:
    parts = [head]
    size = len(head)
    run.last_ns = now(run.timing)
    while size <= _BODY_LIMIT:
        data = await anext(reads, None)
        if data is None:
            break
        parts.append(data)
        size += len(data)
        run.last_ns = now(run.timing)
    if size > _BODY_LIMIT:
        raise ValueError(f"a JSON answer longer than {_BODY_LIMIT} bytes")
    run.unstreamed = True
    # The answer is usable when its last byte is in: that is its time to first token.
    run.take(dialect.parse_body(b"".join(parts)), run.last_ns)
    if run.first_ns is not None and first_token is not None:
        first_token.set()


async def _read_stream(dialect, reads, head: bytes, run: _Run, deadline, loop, total_deadline: float,
                      stall: float, first_token: asyncio.Event | None) -> None:
    parser = NDJSONParser() if dialect.framing == "ndjson" else SSEParser()
    timing = run.timing

    def feed(data: bytes) -> None:
        at_ns = timing.last_rx_ns if timing is not None else time.perf_counter_ns()
        run.last_ns = at_ns
        for event in parser.feed(data):
            run.take(dialect.parse_event(event), at_ns)
        if run.first_ns is not None:
            deadline.reschedule(min(total_deadline, loop.time() + stall))
            if first_token is not None and not first_token.is_set():
                first_token.set()

    if head:
        feed(head)
    async for data in reads:
        feed(data)
    for event in parser.close():
        run.take(dialect.parse_event(event), run.last_ns or time.perf_counter_ns())


async def read_capped(response: httpx.Response) -> bytes:
    """An error body, its first `_ERROR_BODY_LIMIT` bytes at most."""
    parts: list[bytes] = []
    size = 0
    async for data in response.aiter_bytes():
        parts.append(data)
        size += len(data)
        if size >= _ERROR_BODY_LIMIT:
            break
    return b"".join(parts)


def now(timing) -> int:
    """When the last bytes arrived: the kernel's stamp on our own connections, else now."""
    return timing.last_rx_ns if timing is not None and timing.last_rx_ns else time.perf_counter_ns()
