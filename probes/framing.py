"""Incremental readers for the two stream framings providers use: SSE and NDJSON.

Both take bytes as they arrive and hand back complete events, so a probe can stamp
each event with the arrival time of the bytes that completed it.

SSE follows the WHATWG "event stream interpretation" rules (any of CRLF, LF, CR ends a
line; a blank line dispatches; ``:`` starts a comment; multi-line ``data`` joins with
LF). One deviation, on purpose: lines that are not SSE fields are kept as ``stray``
text instead of being dropped, because Gemini ends a failed stream with a bare,
pretty-printed JSON error object that has no ``data:`` prefix (google-genai's own
reader brace-counts such lines, google/genai/_api_client.py).

Both are bounded: a line, and an event (an SSE event's data lines, an NDJSON object
gathered over several lines), may hold at most `MAX_LINE` / `MAX_EVENT` bytes. A body that
never ends its line (a hostile or broken server) is refused with a ValueError, which a
probe reports as MALFORMED, instead of growing a buffer until memory runs out. Bytes are
gathered in a bytearray and a read with no line end in it is only appended, so a long
line costs linear time, not the quadratic time of ``buf + chunk`` on every read.
"""

from __future__ import annotations

from dataclasses import dataclass

_FIELDS = (b"data", b"event", b"id", b"retry")

MAX_LINE = 1 << 20  # bytes in one line; no provider sends an event near this size
MAX_EVENT = 1 << 20  # bytes in one event (its data lines, or the lines of one NDJSON object)


@dataclass(slots=True)
class Event:
    data: str
    event: str | None = None
    stray: bool = False  # text outside SSE framing (Gemini's bare error object)


def _too_long(what: str, limit: int) -> ValueError:
    return ValueError(f"{what} longer than {limit} bytes: the stream is not one a provider sends")


class SSEParser:
    __slots__ = ("_buf", "_data", "_event", "_max_event", "_max_line", "_pending_cr", "_size", "_stray")

    def __init__(self, *, max_line: int = MAX_LINE, max_event: int = MAX_EVENT) -> None:
        self._buf = bytearray()
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self._stray: list[bytes] = []
        self._size = 0  # bytes held in _data and _stray
        self._pending_cr = False
        self._max_line = max_line
        self._max_event = max_event

    def feed(self, chunk: bytes) -> list[Event]:
        """The events that ``chunk`` completes. Raises ValueError when a line or event is over its cap."""
        if not chunk:
            return []  # an empty read must not forget a CR that may be half of a CRLF
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the LF of a CRLF split across two reads
        self._pending_cr = False
        buf = self._buf
        buf += chunk
        if b"\n" not in chunk and b"\r" not in chunk:
            if len(buf) > self._max_line:  # no line ends here: keep the bytes, nothing to scan
                raise _too_long("an SSE line", self._max_line)
            return []
        if buf.endswith(b"\r"):
            self._pending_cr = True
        *lines, rest = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._buf = rest
        out: list[Event] = []
        for line in lines:
            self._line(line, out)
        if len(rest) > self._max_line:
            raise _too_long("an SSE line", self._max_line)
        return out

    def close(self) -> list[Event]:
        """Events left when the body ends; an unterminated final event still counts."""
        out: list[Event] = []
        if self._buf:
            rest, self._buf = self._buf, bytearray()
            self._line(rest, out)
        self._dispatch(out)
        return out

    def _line(self, line: bytes | bytearray, out: list[Event]) -> None:
        if not line:
            self._dispatch(out)
            return
        if len(line) > self._max_line:
            raise _too_long("an SSE line", self._max_line)
        if line[0] == 0x3A:  # ':' comment, e.g. llama.cpp keep-alive pings
            return
        name, sep, value = line.partition(b":")
        if name in _FIELDS:
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._hold(len(value))
                self._data.append(bytes(value))
            elif name == b"event":
                self._event = bytes(value)
        elif sep or line.strip():
            self._hold(len(line))
            self._stray.append(bytes(line))

    def _hold(self, size: int) -> None:
        self._size += size + 1
        if self._size > self._max_event:
            raise _too_long("an SSE event", self._max_event)

    def _dispatch(self, out: list[Event]) -> None:
        if self._data:
            event = self._event.decode() if self._event is not None else None
            out.append(Event(b"\n".join(self._data).decode(), event))
        if self._stray:
            out.append(Event(b"\n".join(self._stray).decode(errors="replace"), stray=True))
        self._data = []
        self._event = None
        self._stray = []
        self._size = 0


class NDJSONParser:
    """Newline-delimited JSON (Ollama): one event per object.

    Servers write one compact object per line. Ollama's documentation prints the same
    stream pretty-printed, so an object that does not close on its own line is gathered
    until a line holding only the top-level ``}``.
    """

    __slots__ = ("_buf", "_max_event", "_max_line", "_pending", "_size")

    def __init__(self, *, max_line: int = MAX_LINE, max_event: int = MAX_EVENT) -> None:
        self._buf = bytearray()
        self._pending: list[bytes] = []
        self._size = 0  # bytes held in _pending
        self._max_line = max_line
        self._max_event = max_event

    def feed(self, chunk: bytes) -> list[Event]:
        """The events that ``chunk`` completes. Raises ValueError when a line or object is over its cap."""
        buf = self._buf
        buf += chunk
        if b"\n" not in chunk:
            if len(buf) > self._max_line:
                raise _too_long("an NDJSON line", self._max_line)
            return []
        *lines, rest = buf.split(b"\n")
        self._buf = rest
        out: list[Event] = []
        for line in lines:
            self._line(line, out)
        if len(rest) > self._max_line:
            raise _too_long("an NDJSON line", self._max_line)
        return out

    def close(self) -> list[Event]:
        out: list[Event] = []
        rest, self._buf = self._buf, bytearray()
        if rest.strip():
            self._line(rest, out)
        if self._pending:
            out.append(Event(b"\n".join(self._pending).decode(errors="replace")))
            self._pending = []
            self._size = 0
        return out

    def _line(self, line: bytes | bytearray, out: list[Event]) -> None:
        if len(line) > self._max_line:
            raise _too_long("an NDJSON line", self._max_line)
        stripped = line.strip()
        if not stripped:
            return
        if self._pending:
            self._size += len(line) + 1
            if self._size > self._max_event:
                raise _too_long("an NDJSON object", self._max_event)
            self._pending.append(bytes(line))
            if line.rstrip() == b"}":
                out.append(Event(b"\n".join(self._pending).decode(errors="replace")))
                self._pending = []
                self._size = 0
        elif stripped == b"{":
            self._pending.append(bytes(line))
            self._size = len(line) + 1
        else:
            out.append(Event(line.decode(errors="replace")))
