"""What `airisk init` found in a source tree: AI call sites, the features proposed from them, and what it
could not decide. Plain data, so the scanner, the YAML writer and the tests share one vocabulary."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` fit to print: no ``user:password@``, no query string (either may carry a key)."""
    url = _USERINFO.sub(r"\1...@", url)
    head, sep, _ = url.partition("?")
    return head + ("?..." if sep else "")


@dataclass(frozen=True, slots=True)
class Setting:
    """How one setting (a base URL, a key, a model) is configured at a call site: a literal value, the
    environment variable it is read from, or both (an env var with a literal default)."""

    literal: str | None = None
    env: str | None = None
    how: str = ""  # where it was seen, e.g. "SDK default", "constructor base_url=", "os.getenv"

    @property
    def known(self) -> bool:
        return self.literal is not None or self.env is not None


@dataclass(frozen=True, slots=True)
class CallSite:
    """One place the product calls an AI backend."""

    path: str  # relative to the scanned root
    line: int
    kind: str  # "sdk", "litellm", "langchain", "http"
    family: str  # the SDK family or HTTP library, e.g. "openai", "litellm", "httpx"
    provider: str | None  # a catalog provider, None when it could not be decided
    function: str  # qualified name of the enclosing function ("<module>" at top level)
    model: Setting = field(default_factory=Setting)
    base_url: Setting = field(default_factory=Setting)
    key: Setting = field(default_factory=Setting)
    route: str | None = None  # the web route of the enclosing function, when a decorator names one
    fallbacks: tuple[str, ...] = ()  # models LiteLLM falls back to (Router fallbacks=, completion fallbacks=)
    note: str = ""  # what could not be decided, one line

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Link:
    """One step of a proposed chain: an AI call site, or a non-AI degraded mode seen in an except branch."""

    site: CallSite | None = None
    degraded: str | None = None
    why: str = ""


@dataclass(slots=True)
class Feature:
    name: str
    function: str  # the function the feature is named from
    path: str
    line: int
    route: str | None
    chain: list[Link]


@dataclass(slots=True)
class Scan:
    """The whole result: every call site, the proposed features, files that could not be read or parsed
    (one line each), and what could not be decided."""

    root: str
    files: int = 0
    sites: list[CallSite] = field(default_factory=list)
    features: list[Feature] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
