"""``server_error``: an HTTP 5xx in the provider's error format."""

from typing import Any, ClassVar

from chaos.faults.catalogue import register
from chaos.faults.types._base import ErrorFault
from probes.result import ErrorKind


@register
class ServerError(ErrorFault):
    name = "server_error"
    doc = "HTTP 5xx in the provider's error format"
    params: ClassVar[dict[str, Any]] = {"status": 500}
    expect = ErrorKind.SERVER_ERROR
