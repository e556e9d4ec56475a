"""``stream_error``: an error event inside a 200 stream after N chunks, in the provider's format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.fault import show
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
    expect = ErrorKind.OVERLOADED
    edits = True

    def check(self, params: dict[str, Any]) -> str | None:
        if params["error"] not in ERRORS:
            return f"error: one of {sorted(ERRORS)}, got {show(params['error'])}"
        return None

    def stream(self, fault: FaultLike, speaker: Speaker, ask: Ask) -> Break:
        return Break(fault.params["after_chunks"], speaker.stream_error(ask, fault.params["error"]))
