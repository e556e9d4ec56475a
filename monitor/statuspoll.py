"""What the vendor's status page says, and whether we knew before it did.

`fetch_status` reads an Atlassian Statuspage v2 ``summary.json`` (the format most AI vendors'
pages have served, and the one ``airisk emulate`` serves at ``/status/<provider>``): the page's
indicator (none | minor | major | critical) and its unresolved incidents. It never raises for
what a remote page does: an unreachable page, a non-200 answer or a body that is not the
format gives a `VendorStatus` with ``error`` set. Missing fields are tolerated one by one.

`lead_time` is pure: given when we detected an outage and the vendor's incidents, it finds
the vendor's first post about it, and by how much we were ahead.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["VendorIncident", "VendorStatus", "fetch_status", "lead_time", "parse_summary", "summary_url"]

# A status page is small (tens of KB); a body much larger than this is not one.
MAX_BODY = 2 * 1024 * 1024


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


async def fetch_status(client: httpx.AsyncClient, url: str, *, provider: str | None = None) -> VendorStatus:
    """The page at ``url`` (a summary.json), read with ``client`` and its timeouts.

    ``provider`` names the result; unset: the page's own name, else the URL's host. Never raises
    for a remote failure: ``error`` says what went wrong (unreachable, HTTP status, not JSON,
    not a Statuspage summary), and the other fields keep their defaults.
    """
    fetched_at = datetime.now(UTC)
    name = provider or urlsplit(url).hostname or url
    try:
        response = await client.get(url, headers={"Accept": "application/json"}, follow_redirects=True)
    except httpx.HTTPError as exc:
        detail = f": {exc}" if str(exc) else ""
        return VendorStatus(name, fetched_at, error=f"unreachable: {type(exc).__name__}{detail}")
    if response.status_code != 200:
        return VendorStatus(name, fetched_at, error=f"HTTP {response.status_code} from the status page")
    if len(response.content) > MAX_BODY:
        return VendorStatus(name, fetched_at, error=f"body of {len(response.content)} bytes is too large for a "
                                                    "status page")
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        return VendorStatus(name, fetched_at, error=f"not JSON: {exc}")
    if not isinstance(data, dict):
        return VendorStatus(name, fetched_at, error=f"not a Statuspage summary: a JSON {type(data).__name__}, "
                                                    "not an object")
    status = parse_summary(data, provider=provider, fetched_at=fetched_at)
    status.provider = status.provider or name
    return status


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
    return value if isinstance(value, str) else ""


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time as aware UTC; None if absent, unparseable or without a zone."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo is not None else None
