"""``stream_error``: an error event inside a 200 stream after N chunks, in the provider's format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Break
from probes.result import ErrorKind

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker

ERRORS = {"overloaded", "server_error", "rate_limited"}  # the error kinds a provider sends mid-stream


@register
class StreamError(FaultType):
    name = "stream_error"
    category = "stream"
    doc = "an error event inside a 200 stream after N chunks"
    params: ClassVar[dict[str, Any]] = {"after_chunks": 1, "error": "overloaded"}
    choices: ClassVar[dict[str, Any]] = {"error": ERRORS}
    expect = ErrorKind.OVERLOADED
    edits = True

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Break:
        return Break(fault.params["after_chunks"], speaker.stream_error(ask, fault.params["error"]))
