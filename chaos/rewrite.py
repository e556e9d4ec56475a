"""Break a real provider's answer the way an outage breaks it: shared by the fault proxy and
the httpx transport.

The emulator invents its answers; the proxy and the transport pass on a real upstream's,
so a stream fault must be applied to bytes that are already on their way. `StreamEditor`
cuts the upstream body into whole events (bytes untouched, so a healthy stream passes
byte for byte), reads each one with the probe's own dialect parser to know whether it
carries answer text or the end-of-stream marker, and says what to send:

- ``stream_cut``, ``stream_stall``, ``malformed_chunk``, ``stream_error``: after
  ``after_chunks`` events carrying text (or before the closing events, if the answer is
  shorter), end cleanly / fall silent / send a corrupt chunk / send the provider's
  in-stream error, exactly as `chaos.emulator` does;
- ``missing_terminator``: drop the protocol's end-of-stream marker (``data: [DONE]``,
  ``message_stop``, ``message-end``, Gemini's final chunk, Ollama's ``done: true``);
- ``slow_tokens``: text events are marked `paced`, and the caller spaces them.

Faults that replace the answer's content (``empty_answer``, ``content_filtered``,
``wrong_answer``, the semantic faults) cannot be edited into an arbitrary upstream event; the
caller does not forward the request and sends `synthesize`'s well-formed answer in the
provider's format instead, as the provider would have.

Which is which, and what each does, is the fault type's to say (`chaos.faults.wire`: a `Break`,
`Unterminated`, or `Synthesize`); this module only carries the effects out on a byte stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from chaos.faults import FAULT_TYPES, Fault, Plan
from chaos.faults.catalogue import edits_stream, stream_effect
from chaos.faults.types.wrong_answer import WRONG
from chaos.faults.wire import Break, Synthesize, Unterminated
from chaos.speakers import SPEAKERS, Ask, Speaker
from probes.dialects import get_dialect
from probes.framing import NDJSONParser, SSEParser

EDITED = frozenset(t.name for t in FAULT_TYPES.values() if t.category == "stream" and t.edits)
SYNTHESIZED = frozenset(t.name for t in FAULT_TYPES.values() if t.category == "stream" and not t.edits)
STREAM_TYPES = (b"text/event-stream", b"application/x-ndjson", b"application/jsonl")
_NO_ASK = Ask(model="", prompt="")


def is_stream(content_type: bytes | str) -> bool:
    if isinstance(content_type, str):
        content_type = content_type.encode()
    return content_type.split(b";", 1)[0].strip().lower() in STREAM_TYPES


MAX_EVENT = 8 << 20
"""The longest event (SSE: up to its blank line; NDJSON: one line) the editor reads, in bytes.
Several times the largest a provider sends (a streamed image's partial event, a final event
repeating the whole answer: a few MB); a stream that goes on without a separator is held to
this, not to all memory."""


class Splitter:
    """Cuts a body into whole events (SSE: up to a blank line; NDJSON: one line), bytes as received.

    Linear in the bytes fed, however they are cut: the buffer is a `bytearray` appended to, and
    a search resumes where the last one stopped (less a separator's length, which may straddle
    two pieces). An event longer than ``limit`` sets `overflowed`: `feed` returns the events
    before it, and `rest` the bytes from that event on; the splitter takes no more."""

    __slots__ = ("_buf", "_ndjson", "_scanned", "limit", "overflowed")

    def __init__(self, framing: str, limit: int | None = None) -> None:
        self._buf = bytearray()
        self._ndjson = framing == "ndjson"
        self._scanned = 0  # no separator starts before this offset of the buffer
        self.limit = MAX_EVENT if limit is None else limit
        self.overflowed = False

    def feed(self, data: bytes) -> list[bytes]:
        if self.overflowed:
            raise ValueError("the splitter overflowed: pass the rest on unsplit")
        buf = self._buf
        buf += data
        out = []
        start = 0
        while True:
            pos = max(start, self._scanned)
            if self._ndjson:
                end = buf.find(b"\n", pos)
                cut = end + 1 if end >= 0 else -1
            else:
                lf, crlf = buf.find(b"\n\n", pos), buf.find(b"\r\n\r\n", pos)
                cut = crlf + 4 if crlf >= 0 and (lf < 0 or crlf < lf) else lf + 2 if lf >= 0 else -1
            if cut < 0 or cut - start > self.limit:
                break
            out.append(bytes(buf[start:cut]))
            start = cut
        if cut >= 0 or len(buf) - start > self.limit:  # an event over the limit, complete or not
            self.overflowed = True
        del buf[:start]
        self._scanned = max(0, len(buf) - 3)
        return out

    def rest(self) -> bytes:
        rest = bytes(self._buf)
        self._buf.clear()
        self._scanned = 0
        return rest


@dataclass(slots=True)
class Out:
    """One piece to send. `paced`: answer text, to be spaced by the plan's token gap.
    `end`: after sending, "end" the body cleanly, or "stall" (fall silent, then drop)."""

    data: bytes
    paced: bool = False
    end: str | None = None


def needs_editing(plan: Plan) -> bool:
    return plan.token_gap_s is not None or edits_stream(plan.stream)


class StreamEditor:
    """Applies one request's plan to its upstream stream, event by event."""

    def __init__(self, plan: Plan, dialect: str, ask: Ask | None = None) -> None:
        self._dialect = get_dialect(dialect)
        self._speaker = SPEAKERS[dialect]
        self._split = Splitter(self._dialect.framing)
        self._ask = ask or _NO_ASK
        fault = plan.stream if edits_stream(plan.stream) else None
        self._fault = fault
        effect = stream_effect(fault, self._speaker, self._ask) if fault is not None else None
        self._break_at = effect if isinstance(effect, Break) else None
        self._unterminated = isinstance(effect, Unterminated)
        self._paced = plan.token_gap_s is not None
        self._texts = 0
        self.ended = False
        self.broke: str | None = None  # the fault that ended the stream, for the request log
        self.overflow: str | None = None  # why the rest of the stream was passed on unedited

    def feed(self, data: bytes) -> list[Out]:
        if self.ended:
            return []
        if self.overflow:
            return [Out(data)] if data else []
        out: list[Out] = []
        for event in self._split.feed(data):
            self._event(event, out)
            if self.ended:
                return out
        if self._split.overflowed:
            # An event the editor cannot hold, so it cannot tell what it carries. The rest goes on
            # as the upstream sent it: the product gets the real answer (a working provider's large
            # event must not become an error nobody asked for), and the log says the fault was not
            # applied to it.
            self.overflow = f"a stream event over {self._split.limit:,} bytes: passed on unedited from there"
            rest = self._split.rest()
            if rest:
                out.append(Out(rest))
        return out

    def close(self) -> list[Out]:
        """The upstream body ended: what is left to send."""
        if self.ended:
            return []
        out: list[Out] = []
        if self.overflow:
            self.ended = True
            return out
        rest = self._split.rest()
        if rest:
            self._event(rest, out)
        if not self.ended and self._break_at is not None:
            out.append(self._break())
        self.ended = True
        return out

    def _event(self, raw: bytes, out: list[Out]) -> None:
        text, closing = self._read(raw)
        brk = self._break_at
        if brk is not None and (closing or (text and self._texts >= brk.after)):
            out.append(self._break())
            return
        if self._unterminated and closing == "done":
            return
        if text:
            self._texts += 1
        out.append(Out(raw, paced=self._paced and text))

    def _read(self, raw: bytes) -> tuple[bool, str | None]:
        """Does the event carry answer text; is it a closing event ("finish" or the "done" marker)."""
        parser = NDJSONParser() if self._dialect.framing == "ndjson" else SSEParser()
        text, closing = False, None
        try:
            events = [*parser.feed(raw), *parser.close()]
        except Exception:  # an event the parser refuses carries nothing the editor acts on
            return False, None
        for event in events:
            try:
                chunk = self._dialect.parse_event(event)
            except Exception:  # whatever an upstream sends (deep nesting: RecursionError), it passes on
                continue
            text = text or bool(chunk.text)
            if chunk.done:
                closing = "done"
            elif chunk.finish is not None and closing is None:
                closing = "finish"
        return text, closing

    def _break(self) -> Out:
        brk, fault = self._break_at, self._fault
        assert brk is not None and fault is not None
        self.ended = True
        self.broke = fault.type
        if brk.stall_s is not None:
            return Out(b"", end="stall")
        return Out(brk.data, end="end")  # malformed_chunk, stream_error: their bytes; stream_cut: none


@dataclass(slots=True)
class Synthesized:
    status: int
    headers: dict[str, str]
    frames: list[bytes]  # one body, or (streamed) the first token, each later token, the end


def synthesize(dialect: str, fault: Fault, ask: Ask) -> Synthesized | None:
    """The answer a content fault (empty, filtered, wrong, refused, ...) puts in place of the real one,
    well-formed in the provider's format; None where the protocol has no such thing (Ollama has no
    content filter) or the fault does not replace the answer."""
    speaker = SPEAKERS[dialect]
    effect = stream_effect(fault, speaker, ask)
    if not isinstance(effect, Synthesize):
        return None
    return render(speaker, effect, ask)


def render(speaker: Speaker, effect: Synthesize, ask: Ask) -> Synthesized:
    """``effect``'s words and finish as the provider sends an answer: one body, or (streamed) the
    first token with the stream's opening, each later token, then the close and terminator."""
    if effect.voice is not None:
        speaker = effect.voice
    words, finish = effect.words, effect.finish
    if not ask.stream:
        body = speaker.complete(ask, "".join(words), finish, len(words))
        return Synthesized(200, {"content-type": "application/json"}, [json.dumps(body).encode()])
    frames = [speaker.open(ask) + (speaker.token(ask, words[0], 0) if words else b"")]
    frames += [speaker.token(ask, word, i) for i, word in enumerate(words[1:], 1)]
    frames.append(speaker.close(ask, finish, len(words)) + speaker.terminator(ask, finish, len(words)))
    return Synthesized(200, {"content-type": speaker.content_type, "cache-control": "no-cache"},
                       [f for f in frames if f])


__all__ = ["EDITED", "MAX_EVENT", "SYNTHESIZED", "WRONG", "Out", "Splitter", "StreamEditor", "Synthesized",
           "is_stream", "needs_editing", "render", "synthesize"]
