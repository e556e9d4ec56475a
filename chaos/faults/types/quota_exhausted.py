"""``quota_exhausted``: a credit or spend cap used up."""

from chaos.faults.catalogue import register
from chaos.faults.types._base import ErrorFault
from probes.result import ErrorKind


@register
class QuotaExhausted(ErrorFault):
    name = "quota_exhausted"
    doc = "credit or spend cap used up: 429 (or 402) that waiting will not fix"
    expect = ErrorKind.QUOTA_EXHAUSTED
