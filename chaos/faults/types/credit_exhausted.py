"""``credit_exhausted``: a prepaid balance used up, as each provider sends it (the speakers'
docstrings say where a provider has no form of its own and the nearest is sent)."""

from chaos.faults.catalogue import register
from chaos.faults.types._base import ErrorFault
from probes.result import ErrorKind


@register
class CreditExhausted(ErrorFault):
    name = "credit_exhausted"
    doc = ("prepaid credit balance spent: Anthropic's 400 naming the credit balance, "
           "OpenAI's 429 insufficient_quota, 402 elsewhere")
    expect = ErrorKind.QUOTA_EXHAUSTED
