"""``context_too_long``: the prompt is over the model's context window."""

from chaos.faults.catalogue import register
from chaos.faults.types._base import ErrorFault
from probes.result import ErrorKind


@register
class ContextTooLong(ErrorFault):
    name = "context_too_long"
    doc = "prompt over the context window: 400"
    expect = ErrorKind.CONTEXT_TOO_LONG
