"""``rate_limited``: a 429 with Retry-After and the provider's rate-limit headers."""

from typing import Any, ClassVar

from chaos.faults.catalogue import register
from chaos.faults.types._base import ErrorFault
from probes.result import ErrorKind


@register
class RateLimited(ErrorFault):
    name = "rate_limited"
    doc = "429 with Retry-After and the provider's rate-limit headers"
    params: ClassVar[dict[str, Any]] = {"retry_after": 5}
    expect = ErrorKind.RATE_LIMITED
