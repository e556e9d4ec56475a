"""``overloaded``: the provider has no capacity, in its own words and status."""

from chaos.faults.catalogue import register
from chaos.faults.types._base import ErrorFault
from probes.result import ErrorKind


@register
class Overloaded(ErrorFault):
    name = "overloaded"
    doc = "no capacity: Anthropic 529, OpenAI/Cohere/Ollama 503, Gemini 503 UNAVAILABLE"
    expect = ErrorKind.OVERLOADED
