"""The contract every dialect module fulfils, and the small values they exchange.

A dialect knows one wire protocol and nothing else: how to build the cheapest honest
request, how to read one stream event, and how to read an error body. It never decides
what an error *means* for availability: it extracts the provider's own words
(`ProviderError`), and `probes.classify` maps them to an `ErrorKind` through the table the
dialect declares (`Dialect.errors`: the provider's own error types and codes, as httpx's
``_exceptions.py`` maps with a table rather than a chain of ifs). So a new protocol's error
vocabulary lives in its own module, next to the reader of the bodies that carry it.
"""

from __future__ import annotations

import functools
import json
import math
import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

import httpx

from probes.framing import Event
from probes.result import ErrorKind
from probes.target import Target

if TYPE_CHECKING:
    from probes.conversation import Conversation

Finish = Literal["stop", "length", "filter", "error", "other"]


@dataclass(slots=True)
class RequestSpec:
    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ProviderError:
    """An error as the provider stated it, in its own terms."""

    http_status: int | None  # None for an error event inside a 200 stream
    type: str | None = None  # OpenAI error.type, Anthropic error.type, Gemini error.status
    code: str | None = None  # OpenAI error.code, Gemini details reason, Anthropic details.error_code
    message: str = ""
    retry_after_s: float | None = None
    # The quota the provider names as spent, in its own words (Gemini's QuotaFailure
    # ``violations[].quotaId`` or ErrorInfo ``metadata.quota_limit``): its window (PerMinute,
    # PerDay) tells a burst that waiting fixes from a budget that lasts until tomorrow.
    quota: str | None = None

    def __post_init__(self) -> None:
        # Bodies are untrusted JSON: a type or code may arrive as a number, list or object.
        # Kept as text so `probes.classify` can always look it up (an int code such as
        # llama.cpp's 503 becomes "503"; a list no longer crashes a dict lookup).
        self.type = None if self.type is None else text_of(self.type)
        self.code = None if self.code is None else text_of(self.code)
        self.message = text_of(self.message)[:MESSAGE_LIMIT]
        self.quota = None if self.quota is None else text_of(self.quota)[:120]


@dataclass(slots=True)
class Chunk:
    """What one stream event told us."""

    text: str = ""
    finish: Finish | None = None
    finish_raw: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: ProviderError | None = None
    done: bool = False  # the protocol's own end-of-stream marker


ErrorTable = Mapping[str, ErrorKind]
"""A provider's own error type or code (`ProviderError.type` / ``.code``) -> the kind it means."""


class Dialect(Protocol):
    name: str
    framing: Literal["sse", "ndjson"]
    # The provider's error vocabulary, looked up by code first, type second (`probes.classify`);
    # empty when the provider states none (the HTTP status decides).
    errors: ErrorTable

    def build_request(self, target: Target, prompt: str, *, api_key: str | None,
                      conversation: Conversation | None = None) -> RequestSpec:
        """The request for ``prompt`` (the probe's: one user message, a tiny answer at temperature 0), or,
        given ``conversation``, for it (its system prompt, turns and parameters in the provider's own
        format; ``prompt`` is then not read). Streaming either way."""
        ...

    def parse_event(self, event: Event) -> Chunk:
        """Read one event; raise ValueError when it is not what the protocol allows."""
        ...

    def parse_body(self, body: bytes) -> Chunk:
        """Read a whole non-streaming answer (a server that ignored ``stream``) as one chunk.

        The chunk is ``done`` (a complete JSON document is its own end); raise ValueError
        when the body is not JSON or lacks the fields the protocol's answer has.
        """
        ...

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        """Read an error answer (any status but 200), mostly through `parse_error` below."""
        ...

    def models_request(self, target: Target, *, api_key: str | None, page: str | None = None) -> RequestSpec:
        """The GET that lists the models ``target``'s key may call (``page``: a token from the previous page)."""
        ...

    def parse_models(self, body: bytes) -> ModelPage:
        """Read one page of the listing; raise ValueError when it is not the documented shape."""
        ...


_FINISHES = frozenset(get_args(Finish))

# The most tokens one call can report. The longest context windows hold a few million
# tokens; a count past this is a broken counter, not usage.
MAX_TOKENS_REPORTED = 100_000_000
MESSAGE_LIMIT = 300  # characters of a provider's error message kept

# Untrusted JSON may nest deeper than str() can recurse: show it with bounded depth and size.
_REPR = reprlib.Repr()
_REPR.maxlevel = 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = MESSAGE_LIMIT
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


def text_of(value: Any) -> str:
    """``value`` (from untrusted JSON) as text: itself if a string, else a bounded repr."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return str(value)  # JSON ints are at most 4300 digits (Python's int_max_str_digits)
    return _REPR.repr(value)


def token_count(value: Any) -> int | None:
    """A provider's token count as a sane ``int`` (0 to `MAX_TOKENS_REPORTED`), else ``None``.

    Counts are bookkeeping, not availability: a provider whose usage counter is broken
    (negative, fractional, NaN, a string, absurdly large) still answered, so the count is
    dropped rather than the probe called MALFORMED (which would page for a working service).
    What leaves `probes` is then always safe for a Prometheus ``Counter.inc`` and for cost.
    An integral float (``12.0``, as some servers' JSON writes it) is read as the int.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TOKENS_REPORTED:
        return value
    return None


def checked(parse_event: Callable[[Any, Any], Chunk]) -> Callable[[Any, Any], Chunk]:
    """Wrap a dialect's ``parse_event`` (or ``parse_body``) so input of the wrong shape is a ValueError.

    Valid JSON can still hold a number where an object belongs (``"choices": [1]``) or a
    list where text belongs, or nest deeper than Python recurses; reading it must end as
    the probe's MALFORMED, never as an AttributeError, TypeError or RecursionError escaping
    `probes.runner.probe`, which promises not to raise. Token counts are passed through
    `token_count`, so an impossible one is ``None``.
    """

    @functools.wraps(parse_event)
    def wrapper(self: Any, event: Any) -> Chunk:
        try:
            chunk = parse_event(self, event)
        except (AttributeError, TypeError, RecursionError) as exc:
            raise ValueError(f"unexpected event shape ({type(exc).__name__}: {str(exc)[:80]}): {_excerpt(event)}") \
                from None
        finish_ok = chunk.finish is None or chunk.finish in _FINISHES
        if not isinstance(chunk.text, str) or not finish_ok:
            raise ValueError(f"unexpected event shape: {_excerpt(event)}")
        chunk.input_tokens = token_count(chunk.input_tokens)
        chunk.output_tokens = token_count(chunk.output_tokens)
        if chunk.finish_raw is not None:
            chunk.finish_raw = text_of(chunk.finish_raw)[:80]
        return chunk

    return wrapper


def _excerpt(event: Any) -> str:
    data = event.data if isinstance(event, Event) else event
    return repr(data[:80])


def loads(text: str | bytes) -> Any:
    """json.loads that reports malformed input (or nesting too deep to read) as ValueError with a short excerpt."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON ({exc.msg}): {text[:80]!r}") from None
    except ValueError as exc:  # not UTF-8, or an integer past Python's digit limit
        raise ValueError(f"malformed JSON ({str(exc)[:60]}): {text[:80]!r}") from None
    except RecursionError:
        raise ValueError(f"malformed JSON (nested too deep): {text[:80]!r}") from None


def body_json(body: bytes) -> Any:
    """The body as JSON, or ``None`` when it is not (malformed, not UTF-8, nested too deep)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def merge(chunks: list[Chunk]) -> Chunk:
    """Several chunks read as one, as a stream reader would take them in order: text joined,
    the last finish and counts, the first error, done if any was."""
    out = Chunk()
    for chunk in chunks:
        out.text += chunk.text
        if chunk.finish is not None:
            out.finish, out.finish_raw = chunk.finish, chunk.finish_raw
        if chunk.input_tokens is not None:
            out.input_tokens = chunk.input_tokens
        if chunk.output_tokens is not None:
            out.output_tokens = chunk.output_tokens
        if out.error is None:
            out.error = chunk.error
        out.done = out.done or chunk.done
    return out


MAX_RETRY_AFTER_S = 7 * 86400.0  # a longer wait than a week is not a hint anyone acts on


def seconds(text: str) -> float | None:
    """A wait in seconds from a provider's text: ``None`` unless finite and 0 to `MAX_RETRY_AFTER_S`."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and 0 <= value <= MAX_RETRY_AFTER_S else None


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI SDK) or ``retry-after`` (seconds or HTTP date).

    NaN, infinity, negative or far-off values (``float()`` accepts the first three) are no hint: ``None``.
    """
    if (ms := seconds(headers.get("retry-after-ms", ""))) is not None:
        return ms / 1000
    value = headers.get("retry-after")
    if not value:
        return None
    if (wait := seconds(value)) is not None:
        return wait
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:  # a date without a zone (or "-0000"): HTTP dates are GMT
            when = when.replace(tzinfo=UTC)
        wait = max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return wait if wait <= MAX_RETRY_AFTER_S else None


ErrorReader = Callable[[Any, "int | None", str], ProviderError]
"""A dialect's ``_error_from(data, status, fallback)``: the body's JSON (or ``None``), the HTTP status (``None``
inside a stream), the raw text to use when the body states no message."""


def parse_error(error_from: ErrorReader, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
    """An error answer as ``error_from`` reads its body, with the wait the headers ask for (`retry_after`)
    unless the body already named one (Gemini's ``google.rpc.RetryInfo`` comes first: it is the provider's
    own figure, and Google's front ends send no header)."""
    err = error_from(body_json(body), status, error_text(body))
    if err.retry_after_s is None:
        err.retry_after_s = retry_after(headers)
    return err


def present(**values: Any) -> dict[str, Any]:
    """The values that are set: a parameter the conversation leaves as ``None`` is the provider's default."""
    return {name: value for name, value in values.items() if value is not None}


def error_text(body: bytes, limit: int = 200) -> str:
    return body[:limit].decode(errors="replace").strip()


# -- model listings ----------------------------------------------------------------------
#
# Each dialect also knows where its provider lists the models a key may call and how that
# listing reads (`Dialect.models_request`, `Dialect.parse_models`). Listings are untrusted
# input like any answer: `parse_models` raises ValueError on anything that is not the
# documented shape, bounds what it keeps, and never lets a TypeError or RecursionError out.

MAX_LISTED = 10_000  # models kept from one page; a page longer than any provider's is cut here
MODEL_NAME_LIMIT = 256  # characters of one model id
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?![0-9])")
RETIRES_FIELD = "x_airisk_retires"
"""The airisk-only extension field (``YYYY-MM-DD``) in which the emulator states a retirement date
for providers whose own listing has none (all but Azure OpenAI). Real providers never send it; read
everywhere so the emulator can exercise the whole path."""


@dataclass(frozen=True, slots=True)
class ListedModel:
    """One model a listing names, with what the listing says about its end of life."""

    name: str
    retires: date | None = None  # the day it stops answering, where the listing says so
    deprecated: bool = False  # the listing marks it deprecated (Cohere ``is_deprecated``)


@dataclass(frozen=True, slots=True)
class ModelPage:
    """One page of a listing, and the token for the next page (``None``: the last page)."""

    models: tuple[ListedModel, ...]
    next_page: str | None = None


def request_headers(target: Target, api_key: str | None, key_header: str, *, scheme: str = "",
                    accept: str = "text/event-stream", own: Mapping[str, str] | None = None) -> dict[str, str]:
    """A request's headers: what it accepts, the protocol's own (``own``, e.g. Anthropic's version), the
    target's (which may override both), and the key in ``key_header`` (after ``scheme``: ``"Bearer "``) if
    there is one."""
    headers = {"accept": accept, **(own or {}), **target.headers}
    if api_key:
        headers[key_header] = scheme + api_key
    return headers


def listing_headers(dialect: Dialect, target: Target, api_key: str | None) -> dict[str, str]:
    """The headers of ``dialect``'s probe request (its authentication and version headers, the target's
    own headers), asking for JSON: a listing authenticates exactly as a probe does."""
    spec = dialect.build_request(target, "", api_key=api_key)
    return {**spec.headers, "accept": "application/json"}


def listing_request(dialect: Dialect, target: Target, api_key: str | None, path: str,
                    params: dict[str, str] | None = None) -> RequestSpec:
    """The GET of ``path`` (``/models``) under the target's base URL, authenticated as `listing_headers` says."""
    url = f"{target.base_url.rstrip('/')}{path}"
    return RequestSpec("GET", url, listing_headers(dialect, target, api_key), None, params or {})


def listing_object(body: bytes, key: str) -> tuple[dict[str, Any], list[Any]]:
    """The listing's top-level object and its list under ``key``; ValueError unless both are there."""
    data = loads(body)
    if not isinstance(data, dict):
        raise ValueError(f"listing is not a JSON object: {body[:80]!r}")
    items = data.get(key)
    if not isinstance(items, list):
        raise ValueError(f"listing has no {key!r} list: {body[:80]!r}")
    return data, items


def listed_name(value: Any) -> str | None:
    """A model id from a listing: a non-empty string of at most `MODEL_NAME_LIMIT` characters, else ``None``."""
    if isinstance(value, str) and 0 < len(value) <= MODEL_NAME_LIMIT and value.isprintable():
        return value
    return None


def iso_day(value: Any) -> date | None:
    """``YYYY-MM-DD`` (or an ISO timestamp starting so), 2000 to 2200, as a date; ``None`` for anything else
    (``fromisoformat`` alone also takes week dates and ``YYYYMMDD``, which no listing means)."""
    if not isinstance(value, str) or not _ISO_DAY.match(value):
        return None
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        return None
    return day if 2000 <= day.year <= 2200 else None


def epoch_day(value: Any) -> date | None:
    """A Unix timestamp in seconds (Azure's ``deprecation.inference``) as a UTC date, 2000 to 2200; else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if not 946_684_800 <= value <= 7_258_118_400:
        return None
    return datetime.fromtimestamp(value, UTC).date()


def page_token(value: Any) -> str | None:
    """A next-page token as sent back: a non-empty string of at most 1,000 characters, else ``None``."""
    return value if isinstance(value, str) and 0 < len(value) <= 1000 and value.isprintable() else None


def listing(items: list[Any], read: Callable[[dict[str, Any]], ListedModel | list[ListedModel] | None],
            next_page: str | None = None) -> ModelPage:
    """The models ``read`` makes of ``items`` (one, several for an entry with aliases, or none; entries that
    are not objects skipped; at most `MAX_LISTED`), as one page. A wrong shape deep inside is ValueError,
    never TypeError."""
    models: list[ListedModel] = []
    for item in items[:MAX_LISTED]:
        if not isinstance(item, dict):
            continue
        try:
            model = read(item)
        except (AttributeError, TypeError, RecursionError) as exc:
            raise ValueError(f"listing entry of unexpected shape ({type(exc).__name__})") from None
        if isinstance(model, ListedModel):
            models.append(model)
        elif model:
            models.extend(model[:MAX_LISTED])
        if len(models) >= MAX_LISTED:
            break
    return ModelPage(tuple(models[:MAX_LISTED]), next_page)
