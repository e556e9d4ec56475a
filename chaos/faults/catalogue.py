"""The fault catalogue: every fault type, registered by its own module under `chaos.faults.types`.

A fault type is one small module (after Toxiproxy's ``toxics/``: ``toxic.go`` declares what a
toxic is, ``reset_peer.go`` and the others each register one): its catalogue entry (name,
category, parameters and their defaults, what a probe should classify it as) AND its effect on a
request, as `chaos.faults.wire` values. The injection points never ask a fault its name; they
ask it for its effect. Adding a fault type is adding one module there (and its tests).
"""

from __future__ import annotations

import random
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from chaos.faults.wire import Response, StreamEffect, Timing
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker

CATEGORIES = ("error", "connection", "timing", "stream")


class FaultLike(Protocol):
    """What a fault type's hooks read of a fault in force (`chaos.faults.fault.Fault` is one): its
    checked parameters and when it was made. Stated here so the catalogue needs no import of it."""

    type: str
    params: dict[str, Any]
    created_at: float


class FaultType:
    """One kind of fault. Subclasses set the class attributes and override the hooks they need.

    ``category``: "error" (an error response) and "connection" end the request (`respond`; the
    first such fault in a plan wins); "timing" faults delay the head or pace the tokens (`timing`);
    "stream" faults change the answer (`stream`; the first wins), either by editing its stream
    (``edits``) or by replacing its content."""

    name: ClassVar[str]
    category: ClassVar[str]
    doc: ClassVar[str]
    params: ClassVar[dict[str, Any]] = {}  # name -> default
    # A numeric parameter's (kind, low, high), where `chaos.faults.fault`'s shared rule for that name
    # (status, seconds, after_chunks, ...) does not fit; a parameter with no rule is a string.
    rules: ClassVar[dict[str, tuple[type, float, float]]] = {}
    choices: ClassVar[dict[str, Collection[str]]] = {}  # a string parameter's allowed values
    expect: ClassVar[ErrorKind | None] = None  # what a probe should classify it as
    edits: ClassVar[bool] = False  # a stream fault applied to the stream's events (else: replaces the content)

    def check(self, params: dict[str, Any]) -> str | None:
        """A problem with these (type-checked, ``choices`` checked) parameters, as ``field: message``;
        None when fine."""
        return None

    def fires(self, fault: FaultLike, now: float) -> bool:
        """Whether the fault is in its active phase at ``now`` (before its dice are rolled)."""
        return True

    def timing(self, fault: FaultLike, rng: random.Random) -> Timing:
        """A timing fault's effect: how long to hold the head back, or how to pace the tokens."""
        raise NotImplementedError(f"{self.name} is a {self.category} fault: it does not time an answer")

    def respond(self, fault: FaultLike, speaker: Speaker, ask: Ask | None) -> Response:
        """An error or connection fault's effect: how the request ends."""
        raise NotImplementedError(f"{self.name} is a {self.category} fault: it does not end a request")

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> StreamEffect | None:
        """A stream fault's effect on the answer; None where the protocol has no such thing."""
        raise NotImplementedError(f"{self.name} is a {self.category} fault: it does not change an answer")

    def __repr__(self) -> str:
        return f"FaultType({self.name!r}, {self.category!r})"


FAULT_TYPES: dict[str, FaultType] = {}
"""Every fault type by name, in catalogue order (by category, then name), once `chaos.faults` is imported."""


def register(cls: type[FaultType]) -> type[FaultType]:
    """Class decorator: add one fault type to `FAULT_TYPES`."""
    if cls.category not in CATEGORIES:
        raise ValueError(f"{cls.__name__}: category {cls.category!r} is not one of {CATEGORIES}")
    if cls.name in FAULT_TYPES:
        raise ValueError(f"fault type {cls.name!r} registered twice")
    FAULT_TYPES[cls.name] = cls()
    ordered = sorted(FAULT_TYPES.values(), key=lambda t: (CATEGORIES.index(t.category), t.name))
    FAULT_TYPES.clear()
    FAULT_TYPES.update((t.name, t) for t in ordered)
    return cls


def known_fault_types() -> list[dict[str, Any]]:
    """The catalogue as the control APIs list it (``GET /_airisk/fault-types``)."""
    return [{"type": t.name, "category": t.category, "doc": t.doc, "params": dict(t.params),
             "expect": str(t.expect) if t.expect else None} for t in FAULT_TYPES.values()]


def response_effect(fault: FaultLike, speaker: Speaker, ask: Ask | None) -> Response:
    """How an error or connection fault ends this request, in this speaker's protocol."""
    return FAULT_TYPES[fault.type].respond(fault, speaker, ask)


def stream_effect(fault: FaultLike, speaker: Speaker, ask: Ask) -> StreamEffect | None:
    """What a stream fault does to this answer; None where the speaker's protocol has no such
    thing (it lists the fault in ``unsupported``: Ollama has no content filter)."""
    if fault.type in speaker.unsupported:
        return None
    return FAULT_TYPES[fault.type].stream(fault, speaker, ask)


def edits_stream(fault: FaultLike | None) -> bool:
    """Is this a stream fault applied to the stream's events (not one replacing the answer)?"""
    return fault is not None and FAULT_TYPES[fault.type].edits
