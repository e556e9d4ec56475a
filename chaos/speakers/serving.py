"""Where a protocol is served: the paths the emulator answers for it and how its model listing pages.

Each speaker declares these (``routes``, ``paging``) so that the emulator builds its routes from them
instead of a chain of ``if dialect == ...``; the sources of each provider's paths and paging are cited
where the speaker declares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Listed:
    """One model in an emulated listing, with the day it retires (``YYYY-MM-DD``) if it has one."""

    name: str
    retires: str | None = None


@dataclass(frozen=True, slots=True)
class EmulatorRoute:
    """One path the emulator serves for a provider that speaks this protocol.

    ``path`` is under the provider's emulator prefix (`probes.catalog.Provider.emulator_prefix`), in
    aiohttp's pattern syntax (``{name}`` matches one segment). ``kind`` says what answers it: a
    generation (``generate``) or the model listing (``listing``). ``variant`` names the provider option
    (`Provider.options`) the route belongs to, for a provider that speaks the protocol at other paths
    (Azure OpenAI, ``azure``); a route without one serves the providers that set none of the speaker's
    variants. ``swap`` is ``(old, new)`` replaced in the prefix: Cohere lists its models under v1 while it
    chats under v2 ("List Models", docs.cohere.com/reference/list-models)."""

    method: Literal["GET", "POST"]
    path: str
    kind: Literal["generate", "listing"]
    variant: str | None = None
    swap: tuple[str, str] | None = None

    def at(self, prefix: str) -> str:
        """The route's full path for a provider served under ``prefix``."""
        return (prefix.replace(*self.swap) if self.swap else prefix) + self.path


@dataclass(frozen=True, slots=True)
class Paging:
    """How a provider pages its model listing: the query names of the page size and the page token, the size
    when none is asked for, and whether the token is the last id of the previous page (Anthropic's
    ``after_id``) rather than an offset. Without a size name (`ONE_PAGE`) the listing is one page."""

    size_key: str | None = None
    token_key: str | None = None
    default_size: int = 0
    after_id: bool = False

    def page(self, query: Mapping[str, str], entries: list[Listed]) -> tuple[list[Listed], str | None]:
        """One page of ``entries`` as ``query`` asks for it (a size up to 1,000; a size or token that is not a
        small number is ignored), and the token for the next page (``None``: the last page)."""
        if self.size_key is None or self.token_key is None:
            return entries, None
        raw = query.get(self.size_key, "")
        ok = raw.isascii() and raw.isdigit() and 0 < len(raw) < 6 and int(raw)
        size = min(int(raw), 1000) if ok else self.default_size
        token = query.get(self.token_key)
        start = 0
        if token and self.after_id:
            start = next((i + 1 for i, e in enumerate(entries) if e.name == token), len(entries))
        elif token and token.isascii() and token.isdigit() and len(token) < 7:
            start = int(token)
        page = entries[start:start + size]
        if start + size >= len(entries):
            return page, None
        return page, (page[-1].name if self.after_id else str(start + size))


ONE_PAGE = Paging()


def routes_for(routes: tuple[EmulatorRoute, ...], options: Mapping[str, Any]) -> tuple[EmulatorRoute, ...]:
    """Of a speaker's ``routes``, those it serves for a provider with ``options``: the routes of the first
    variant the options set (``{"azure": True}``), else those of no variant."""
    variant = next((r.variant for r in routes if r.variant and options.get(r.variant)), None)
    return tuple(r for r in routes if r.variant == variant)
