"""Server-side renderings of each wire protocol, keyed like `probes.dialects.DIALECTS`.

A speaker also declares its protocol's place in the emulator and the proxy (`EmulatorRoute`,
`Paging`: `chaos.speakers.serving`; ``sdk_suffix``): see `chaos.speakers.base`."""

from chaos.speakers import anthropic, cohere, gemini, ollama, openai
from chaos.speakers.base import Ask, Speaker, Stated
from chaos.speakers.serving import ONE_PAGE, EmulatorRoute, Listed, Paging, routes_for

SPEAKERS: dict[str, Speaker] = {
    module.SPEAKER.name: module.SPEAKER for module in (openai, anthropic, gemini, cohere, ollama)
}

__all__ = ["ONE_PAGE", "SPEAKERS", "Ask", "EmulatorRoute", "Listed", "Paging", "Speaker", "Stated", "routes_for"]
