"""Incremental readers for the two stream framings providers use: SSE and NDJSON.

Both take bytes as they arrive and hand back complete events, so a probe can stamp
each event with the arrival time of the bytes that completed it.

SSE follows the WHATWG "event stream interpretation" rules (any of CRLF, LF, CR ends a
line; a blank line dispatches; ``:`` starts a comment; multi-line ``data`` joins with
LF). One deviation, on purpose: lines that are not SSE fields are kept as ``stray``
text instead of being dropped, because Gemini ends a failed stream with a bare,
pretty-printed JSON error object that has no ``data:`` prefix (google-genai's own
reader brace-counts such lines, google/genai/_api_client.py).
"""

from __future__ import annotations

from dataclasses import dataclass

_FIELDS = (b"data", b"event", b"id", b"retry")


@dataclass(slots=True)
class Event:
    data: str
    event: str | None = None
    stray: bool = False  # text outside SSE framing (Gemini's bare error object)


class SSEParser:
    __slots__ = ("_buf", "_data", "_event", "_pending_cr", "_stray")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self._stray: list[bytes] = []
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[Event]:
        if not chunk:
            return []  # an empty read must not forget a CR that may be half of a CRLF
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across two reads
        self._pending_cr = False
        buf = self._buf + chunk
        if b"\r" in buf:
            if buf.endswith(b"\r"):
                self._pending_cr = True
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, self._buf = buf.split(b"\n")
        out: list[Event] = []
        for line in lines:
            self._line(line, out)
        return out

    def close(self) -> list[Event]:
        """Events left when the body ends; an unterminated final event still counts."""
        out: list[Event] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._dispatch(out)
        return out

    def _line(self, line: bytes, out: list[Event]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line[0] == 0x3A:  # ':' comment, e.g. llama.cpp keep-alive pings
            return
        name, sep, value = line.partition(b":")
        if name in _FIELDS:
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value
        elif sep or line.strip():
            self._stray.append(line)

    def _dispatch(self, out: list[Event]) -> None:
        if self._data:
            event = self._event.decode() if self._event is not None else None
            out.append(Event(b"\n".join(self._data).decode(), event))
        if self._stray:
            out.append(Event(b"\n".join(self._stray).decode(errors="replace"), stray=True))
        self._data = []
        self._event = None
        self._stray = []


class NDJSONParser:
    """Newline-delimited JSON (Ollama): one event per object.

    Servers write one compact object per line. Ollama's documentation prints the same
    stream pretty-printed, so an object that does not close on its own line is gathered
    until a line holding only the top-level ``}``.
    """

    __slots__ = ("_buf", "_pending")

    def __init__(self) -> None:
        self._buf = b""
        self._pending: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Event]:
        *lines, self._buf = (self._buf + chunk).split(b"\n")
        out: list[Event] = []
        for line in lines:
            self._line(line, out)
        return out

    def close(self) -> list[Event]:
        out: list[Event] = []
        rest, self._buf = self._buf, b""
        if rest.strip():
            self._line(rest, out)
        if self._pending:
            out.append(Event(b"\n".join(self._pending).decode(errors="replace")))
            self._pending = []
        return out

    def _line(self, line: bytes, out: list[Event]) -> None:
        stripped = line.strip()
        if not stripped:
            return
        if self._pending:
            self._pending.append(line)
            if line.rstrip() == b"}":
                out.append(Event(b"\n".join(self._pending).decode(errors="replace")))
                self._pending = []
        elif stripped == b"{":
            self._pending.append(line)
        else:
            out.append(Event(line.decode(errors="replace")))
