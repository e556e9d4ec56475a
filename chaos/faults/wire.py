"""What a fault does to one request, as data: the `Wire` effects each injection point carries out.

A fault type (one module under `chaos.faults.types`) says what happens; the emulator (aiohttp),
the fault proxy (ASGI) and `ChaosTransport` (httpx, sync and async) say how, each on its own
wire. The effects RETURN data rather than call a ``wire.x()`` method, because the three do not
share a way of acting: the transport must *raise* the httpx exception a real socket would give
(``ReadError`` from ECONNRESET, ``ConnectError`` from ENETUNREACH, ``ReadTimeout``), while the
emulator and the proxy *send* bytes or *drop* a socket, and only the transport runs both sync and
async. A value each adapter matches on keeps every fault free of framework code, and lets a test
read a fault's effect without any server (Toxiproxy's toxics, which act on a pipe, are the model
for one-module-a-fault; the return-data shape is this project's choice, issue 16's map, risk 1).
So "Wire" is not a class an adapter subclasses: it is this set of values, and an adapter is the
one function per injection point that matches on them (named in ``chaos/README.md``).

The effects, and who carries each out:

- `Respond`: answer with this status, headers and body (an error in the dialect's own format,
  rendered by its speaker). Emulator: ``web.Response``; proxy: two ASGI sends; transport: an
  ``httpx.Response`` made without calling the wrapped transport.
- `Drop`: end the connection with no response. ``reset``: a TCP RST (SO_LINGER 0), in-process
  ``ReadError(ECONNRESET)``; else a FIN, in-process ``RemoteProtocolError``, or with ``connect``
  (the provider could not be reached) ``ConnectError(ENETUNREACH)``: behind a proxy the product is
  already connected, so a FIN is the nearest a socket can say it.
- `Hold`: send nothing for ``seconds`` (or until the client leaves), then drop with a FIN. The
  transport raises ``ReadTimeout`` when the request's read timeout comes first.
- `Break`: in a stream, after ``after`` events carrying text (or before the closing events, when
  the answer is shorter), send ``data`` and end the body cleanly, or with ``stall_s`` fall silent
  that long and drop. Applied to a generated stream (emulator) or a real one (`chaos.rewrite`).
- `Unterminated`: the whole stream, but not its end-of-stream marker.
- `Synthesize`: replace the answer's content with ``words`` and ``finish`` in the provider's format
  (``voice``: the speaker that renders it in place of the dialect's own, where the answer needs a
  field the plain renderer leaves empty, OpenAI's ``message.refusal``: `Speaker.refusal_voice`).
  With ``wrong``, an injection point that composes answers itself (the emulator's storefront
  features) composes a wrong one of its own instead of ``words``.
- `DelayHead`: hold the answer back once, before its first byte; `Pace`: space the answer's
  chunks ``gap_s`` apart. These add up across faults, so `FaultSet.plan` folds them into the
  `Plan` (``first_token_delay_s``, ``token_gap_s``), which each adapter reads.

The adapters differ on purpose where the wire differs, and tests pin each: the proxy delays before
asking the upstream, the transport after the response is made; the emulator breaks only streamed
answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Respond:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Drop:
    reset: bool = False
    connect: bool = False


@dataclass(frozen=True, slots=True)
class Hold:
    seconds: float


@dataclass(frozen=True, slots=True)
class Break:
    after: int
    data: bytes = b""
    stall_s: float | None = None


@dataclass(frozen=True, slots=True)
class Unterminated:
    """The whole stream, but not its end-of-stream marker (no fields: the marker is the speaker's)."""


@dataclass(frozen=True, slots=True)
class Synthesize:
    words: list[str] = field(default_factory=list)
    finish: str = "stop"
    wrong: bool = False
    voice: Any = None  # a speaker rendering this answer in place of the dialect's own


@dataclass(frozen=True, slots=True)
class DelayHead:
    seconds: float


@dataclass(frozen=True, slots=True)
class Pace:
    gap_s: float


Response = Respond | Drop | Hold
"""What an error or connection fault does: the request ends there."""
StreamEffect = Break | Unterminated | Synthesize
"""What a stream fault does to the answer."""
Timing = DelayHead | Pace
"""What a timing fault does to the answer's pace."""


def words_of(text: str, max_tokens: int) -> list[str]:
    """``text`` as streamed tokens (a word, with the space before it), at most ``max_tokens``
    (at least one, as a model sends at least one token)."""
    parts = text.split(" ")
    return [parts[0], *(" " + w for w in parts[1:])][: max(1, max_tokens)]
