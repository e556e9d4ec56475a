"""What several fault types share: an error in the dialect's format, and a stream broken after N chunks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.faults.catalogue import FaultLike, FaultType
from chaos.faults.wire import Respond

if TYPE_CHECKING:
    from chaos.speakers import Ask, Speaker


class ErrorFault(FaultType):
    """Answers with the provider's own error for ``kind`` (the fault's name unless set): each
    speaker's table holds the status, headers and body, with the provider's docs cited there."""

    category = "error"
    kind: str | None = None

    def respond(self, fault: FaultLike, speaker: Speaker, ask: Ask | None) -> Respond:
        status, headers, body = speaker.error(self.kind or self.name, status=fault.params.get("status"),
                                              retry_after=fault.params.get("retry_after"), ask=ask)
        return Respond(status, headers, body)
