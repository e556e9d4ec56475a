"""``auth``: the API key is revoked."""

from chaos.faults.catalogue import register
from chaos.faults.types._base import ErrorFault
from probes.result import ErrorKind


@register
class Auth(ErrorFault):
    name = "auth"
    doc = "API key revoked: 401"
    expect = ErrorKind.AUTH
