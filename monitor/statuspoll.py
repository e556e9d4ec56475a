"""What the vendor's status page says, and whether we knew before it did.

`fetch_status` reads an Atlassian Statuspage v2 ``summary.json`` (the format most AI vendors'
pages have served, and the one ``airisk emulate`` serves at ``/status/<provider>``): the page's
indicator (none | minor | major | critical) and its unresolved incidents. It never raises for
what a remote page does: an unreachable page, a non-200 answer, a body too large, too slow or
not the format gives a `VendorStatus` with ``error`` set. Missing fields are tolerated one by one.

The page is someone else's server, so it is read bounded: streamed and cut at `MAX_BODY` bytes
(after decompression, which we do ourselves so a small gzip body cannot inflate past the cap),
at most `MAX_REDIRECTS` redirects (whose bodies are never read), and one total deadline over it
all (the client's timeouts are per phase; a page trickling a byte a second never trips them).

`parse_status` is the pure half (bytes in, `VendorStatus` out, or `StatusPageError`): what a
fuzzer calls with one input.

`lead_time` is pure: given when we detected an outage and the vendor's incidents, it finds
the vendor's first post about it, and by how much we were ahead.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["MAX_BODY", "MAX_REDIRECTS", "StatusPageError", "VendorIncident", "VendorStatus", "fetch_status",
           "lead_time", "parse_status", "parse_summary", "summary_url"]

# A status page is small (tens of KB); a body much larger than this is not one.
MAX_BODY = 1024 * 1024
MAX_REDIRECTS = 3
FETCH_WITHIN = 30.0  # seconds for the whole fetch, redirects and body included
# A text field kept from a page: far above any real incident name, far below a memory problem.
MAX_TEXT = 2000


class StatusPageError(ValueError):
    """A body that is not a readable Statuspage summary: too large, not JSON (including JSON nested
    too deeply to read), or JSON that is not an object. The message says which, in one line.
    `parse_status` raises no other exception for any input."""


@dataclass(frozen=True, slots=True)
class VendorIncident:
    """One incident as the vendor's page showed it. Times are UTC; None where the page gave none."""

    id: str
    name: str
    status: str  # investigating | identified | monitoring | resolved | postmortem | ...
    impact: str  # none | minor | major | critical
    created_at: datetime | None
    first_update_at: datetime | None  # the earliest post (update) on it: when the vendor first spoke

    @property
    def first_post_at(self) -> datetime | None:
        """When the vendor first said anything about it: its first update, else its creation."""
        return self.first_update_at or self.created_at


@dataclass(slots=True)
class VendorStatus:
    """One look at a vendor's status page."""

    provider: str
    fetched_at: datetime
    indicator: str = "unknown"  # none | minor | major | critical; "unknown" when the page did not say
    description: str = ""
    incidents: list[VendorIncident] = field(default_factory=list)
    error: str | None = None  # why the page could not be read; None when it was

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (ISO 8601 times), e.g. for `monitor.store.models.StatusSnapshot`."""
        data = asdict(self)
        data["fetched_at"] = self.fetched_at.isoformat()
        data["incidents"] = [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(i).items()}
            for i in self.incidents
        ]
        return data


def summary_url(status_page: str) -> str:
    """The summary.json of a Statuspage-hosted page (``probes.catalog`` ``status_page``)."""
    return status_page.rstrip("/") + "/api/v2/summary.json"


async def fetch_status(client: httpx.AsyncClient, url: str, *, provider: str | None = None,
                       within: float = FETCH_WITHIN) -> VendorStatus:
    """The page at ``url`` (a summary.json), read with ``client`` and at most ``within`` seconds in all.

    ``provider`` names the result; unset: the page's own name, else the URL's host. Never raises
    for a remote failure: ``error`` says what went wrong (unreachable, HTTP status, too large, too
    many redirects, too slow, not JSON, not a Statuspage summary), and the other fields keep their
    defaults.
    """
    fetched_at = datetime.now(UTC)
    name = provider or urlsplit(url).hostname or url
    try:
        async with asyncio.timeout(within):
            body = await _read(client, url)
    except TimeoutError:
        return VendorStatus(name, fetched_at, error=f"no whole answer within {within:g}s")
    except StatusPageError as exc:
        return VendorStatus(name, fetched_at, error=str(exc))
    except httpx.HTTPError as exc:
        detail = f": {exc}" if str(exc) else ""
        return VendorStatus(name, fetched_at, error=f"unreachable: {type(exc).__name__}{detail}")
    try:
        status = parse_status(body, provider=provider, fetched_at=fetched_at)
    except StatusPageError as exc:
        return VendorStatus(name, fetched_at, error=str(exc))
    status.provider = status.provider or name
    return status


async def _read(client: httpx.AsyncClient, url: str) -> bytes:
    """The 200 body at ``url``, following at most `MAX_REDIRECTS` redirects; raises `StatusPageError`
    for an answer that is not one (and httpx errors for the network)."""
    for _ in range(MAX_REDIRECTS + 1):
        # gzip only: we inflate it ourselves, under the cap (httpx would inflate a chunk whole).
        request = client.build_request("GET", url, headers={"Accept": "application/json", "Accept-Encoding": "gzip"})
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
        except httpx.InvalidURL as exc:  # not an HTTPError: httpx raises it reading a bad Location too
            raise StatusPageError(f"a URL that cannot be fetched: {str(exc)[:200]}") from None
        try:
            if response.has_redirect_location:
                url = _redirect_target(response)
                continue
            if response.status_code != 200:
                raise StatusPageError(f"HTTP {response.status_code} from the status page")
            return await _capped(response)
        finally:
            await response.aclose()
    raise StatusPageError(f"more than {MAX_REDIRECTS} redirects")


def _redirect_target(response: httpx.Response) -> str:
    try:
        target = response.url.join(response.headers["location"])
    except (httpx.InvalidURL, ValueError):
        raise StatusPageError("a redirect to an invalid URL") from None
    if target.scheme not in ("http", "https") or not target.host:
        raise StatusPageError(f"a redirect to a {target.scheme or 'relative'} URL, not http(s)")
    return str(target)


def _too_large(what: str) -> StatusPageError:
    return StatusPageError(f"body too large for a status page ({what}; at most {MAX_BODY} bytes are read)")


async def _capped(response: httpx.Response) -> bytes:
    """The body, decompressed, read as it streams in and given up on past `MAX_BODY` bytes."""
    try:  # a response made in memory (a mock transport) has its body already, decoded
        content = response.content
    except httpx.ResponseNotRead:
        pass
    else:
        if len(content) > MAX_BODY:
            raise _too_large(f"{len(content)} bytes")
        return content
    coding = response.headers.get("content-encoding", "").strip().lower()
    if coding in ("gzip", "x-gzip"):
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif coding in ("", "identity"):
        inflate = None
    else:
        raise StatusPageError(f"Content-Encoding {coding[:40]!r} is not one we asked for")
    length = response.headers.get("content-length", "")
    if inflate is None and length.isdigit() and int(length) > MAX_BODY:
        raise _too_large(f"Content-Length {length[:20]}")
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            # max_length bounds what one chunk may inflate to: one byte past the cap is enough to know.
            body += inflate.decompress(chunk, MAX_BODY + 1 - len(body)) if inflate else chunk
            if len(body) > MAX_BODY:
                raise _too_large("cut while it streamed")
        if inflate is not None:
            body += inflate.flush()[: MAX_BODY + 1 - len(body)]
    except zlib.error as exc:
        raise StatusPageError(f"not gzip as its Content-Encoding says: {exc}") from None
    if len(body) > MAX_BODY:
        raise _too_large("cut while it streamed")
    return bytes(body)


def parse_status(body: bytes, *, provider: str | None = None, fetched_at: datetime | None = None) -> VendorStatus:
    """A summary.json body as a `VendorStatus`; raises `StatusPageError`, and nothing else, for a body
    that is not one (too large, not JSON, nested too deeply, not an object).

    Fields are as `parse_summary` reads them (text cut at `MAX_TEXT` characters, NUL and lone
    surrogates replaced, so every value can be stored). ``provider`` unset: the page's own name
    ("" if it gives none). ``fetched_at`` unset: now.
    """
    if len(body) > MAX_BODY:
        raise _too_large(f"{len(body)} bytes")
    try:
        data = json.loads(body)
    except RecursionError:
        raise StatusPageError("not JSON we read: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        raise StatusPageError(f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise StatusPageError(f"not a Statuspage summary: a JSON {type(data).__name__}, not an object")
    return parse_summary(data, provider=provider, fetched_at=fetched_at)


def parse_summary(data: dict[str, Any], *, provider: str | None = None,
                  fetched_at: datetime | None = None) -> VendorStatus:
    """A decoded summary.json as a `VendorStatus`; each missing or ill-typed field is skipped.

    ``provider`` unset: the page's own name ("" if it gives none). ``fetched_at`` unset: now.
    """
    page, status = _obj(data.get("page")), _obj(data.get("status"))
    incidents = [_incident(i) for i in _list(data.get("incidents")) if isinstance(i, dict)]
    return VendorStatus(
        provider=provider or _str(page.get("name")),
        fetched_at=fetched_at or datetime.now(UTC),
        indicator=_str(status.get("indicator")) or "unknown",
        description=_str(status.get("description")),
        incidents=[i for i in incidents if i is not None],
    )


def lead_time(
    detected_at: datetime, vendor_incidents: list[VendorIncident], *, window: timedelta | float
) -> tuple[datetime, float] | None:
    """The vendor's first post about our incident, and our lead in seconds; None if it posted none.

    A vendor incident is about ours when its first post (`VendorIncident.first_post_at`) is
    within ``window`` (a timedelta, or seconds) before or after ``detected_at``; of those, the
    earliest post counts. Seconds are ``first_post_at - detected_at``: positive when we
    detected first, negative when the vendor spoke first.
    """
    span = window if isinstance(window, timedelta) else timedelta(seconds=window)
    if span < timedelta(0):
        raise ValueError(f"window must not be negative, got {span}")
    posts = [p for i in vendor_incidents if (p := i.first_post_at) is not None and abs(p - detected_at) <= span]
    if not posts:
        return None
    first = min(posts)
    return first, (first - detected_at).total_seconds()


def _incident(data: dict[str, Any]) -> VendorIncident | None:
    ident = _str(data.get("id"))
    if not ident:
        return None
    updates = [_time(u.get("created_at")) for u in _list(data.get("incident_updates")) if isinstance(u, dict)]
    posted = [u for u in updates if u is not None]
    return VendorIncident(
        id=ident,
        name=_str(data.get("name")),
        status=_str(data.get("status")),
        impact=_str(data.get("impact")),
        created_at=_time(data.get("created_at")),
        first_update_at=min(posted) if posted else None,
    )


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    """A text field as it can be stored anywhere: cut, NUL (PostgreSQL refuses it) and lone
    surrogates (no UTF-8 for them) replaced."""
    if not isinstance(value, str):
        return ""
    text = value[:MAX_TEXT].replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time as aware UTC; None if absent, unparseable or without a zone."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value[:64].strip().replace("Z", "+00:00"))
        # 9999-12-31T23:59:59-12:00 is a valid time whose UTC is past datetime.max: OverflowError.
        return when.astimezone(UTC) if when.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None
