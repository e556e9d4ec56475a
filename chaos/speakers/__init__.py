"""Server-side renderings of each wire protocol, keyed like `probes.dialects.DIALECTS`."""

from chaos.speakers import anthropic, cohere, gemini, ollama, openai
from chaos.speakers.base import Ask, Listed, Speaker

SPEAKERS: dict[str, Speaker] = {
    module.SPEAKER.name: module.SPEAKER for module in (openai, anthropic, gemini, cohere, ollama)
}

__all__ = ["SPEAKERS", "Ask", "Listed", "Speaker"]
