"""One module per wire protocol; `DIALECTS` maps a dialect name to its implementation."""

from probes.dialects import anthropic, cohere, gemini, ollama, openai
from probes.dialects.base import Chunk, Dialect, ProviderError, RequestSpec

DIALECTS: dict[str, Dialect] = {
    module.DIALECT.name: module.DIALECT for module in (openai, anthropic, gemini, cohere, ollama)
}


def get_dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise KeyError(f"unknown dialect {name!r} (known: {', '.join(sorted(DIALECTS))})") from None


__all__ = ["DIALECTS", "Chunk", "Dialect", "ProviderError", "RequestSpec", "get_dialect"]
