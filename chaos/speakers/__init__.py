"""Server-side renderings of each wire protocol, keyed like `probes.dialects.DIALECTS`.

A speaker also declares its protocol's place in the emulator and the proxy (`EmulatorRoute`,
`Paging`, ``sdk_suffix``): see `chaos.speakers.base`."""

from chaos.speakers import anthropic, cohere, gemini, ollama, openai
from chaos.speakers.base import ONE_PAGE, Ask, EmulatorRoute, Listed, Paging, Speaker, Stated, routes_for

SPEAKERS: dict[str, Speaker] = {
    module.SPEAKER.name: module.SPEAKER for module in (openai, anthropic, gemini, cohere, ollama)
}

__all__ = ["ONE_PAGE", "SPEAKERS", "Ask", "EmulatorRoute", "Listed", "Paging", "Speaker", "Stated", "routes_for"]
