"""Reading vendors' status pages: what the page says over a real emulated page, never an exception
for a broken one, and our lead time over the vendor's first post."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from monitor.statuspoll import VendorIncident, fetch_status, lead_time, summary_url
from probes.catalog import get_provider
from tests.conftest import SHARED, need

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


# --- against the emulated status page ------------------------------------------------------------


async def test_a_quiet_page_reads_all_operational(emulator, client):
    status = await fetch_status(client, summary_url(emulator.url + "/status/openai"), provider="openai")
    assert status.ok and status.error is None
    assert (status.provider, status.indicator, status.description) == ("openai", "none", "All Systems Operational")
    assert status.incidents == []
    assert (datetime.now(UTC) - status.fetched_at) < timedelta(seconds=5)


async def test_an_incident_the_vendor_posts_shows_with_its_first_post(emulator, client):
    page = emulator.emu.pages["anthropic"]
    posted = page.post(name="Elevated errors on the API", impact="major", stage="investigating")
    page.post(name="Elevated errors on the API", impact="critical", stage="identified")
    status = await fetch_status(client, summary_url(emulator.url + "/status/anthropic/"))
    assert status.provider == "anthropic (emulated)"  # the page's own name when none is given
    assert (status.indicator, status.description) == ("critical", "Major System Outage")
    [incident] = status.incidents
    assert (incident.id, incident.name, incident.status, incident.impact) == (
        posted.id, "Elevated errors on the API", "identified", "critical")
    first_update = posted.updates[0][2]
    # The page writes milliseconds: the first post is the first update, to the millisecond.
    assert abs(incident.first_update_at - first_update) < timedelta(milliseconds=1)
    assert abs(incident.created_at - posted.created_at) < timedelta(milliseconds=1)
    assert incident.first_post_at == incident.first_update_at
    json.dumps(status.to_dict())  # storable as a status snapshot


async def test_a_resolved_incident_leaves_the_summary(emulator, client):
    page = emulator.emu.pages["openai"]
    page.post(name="Degraded performance", impact="minor")
    assert (await fetch_status(client, summary_url(emulator.url + "/status/openai"))).indicator == "minor"
    page.resolve_all()
    status = await fetch_status(client, summary_url(emulator.url + "/status/openai"))
    assert (status.indicator, status.incidents) == ("none", [])


async def test_lead_time_against_the_vendors_real_post(emulator, client):
    detected_at = datetime.now(UTC) - timedelta(seconds=90)  # we paged a minute and a half ago
    emulator.emu.pages["openai"].post(name="Elevated error rates", impact="major")
    status = await fetch_status(client, summary_url(emulator.url + "/status/openai"))
    first_post_at, seconds = lead_time(detected_at, status.incidents, window=timedelta(minutes=30))
    assert first_post_at == status.incidents[0].first_post_at
    assert 89 < seconds < 100  # we were first by about 90 s


async def test_an_unknown_page_is_an_error_not_an_exception(emulator, client):
    status = await fetch_status(client, summary_url(emulator.url + "/status/nosuchvendor"), provider="x")
    assert not status.ok and status.error == "HTTP 404 from the status page"
    assert status.indicator == "unknown" and status.incidents == []


async def test_an_unreachable_page_is_an_error_not_an_exception(client):
    status = await fetch_status(client, "http://127.0.0.1:9/api/v2/summary.json", provider="openai")
    assert status.error.startswith("unreachable: ConnectError")


# --- broken and partial pages (MockTransport) ----------------------------------------------------


async def _fetch(body: bytes | str, *, status: int = 200, **kwargs):
    content = body.encode() if isinstance(body, str) else body
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=content))
    async with httpx.AsyncClient(transport=transport) as client:
        return await fetch_status(client, "https://status.example.com/api/v2/summary.json", **kwargs)


async def test_broken_json_is_an_error_with_the_reason():
    # The shape of Statuspage's own documented example, which misses a comma after "status".
    body = '{"page": {"name": "Example"}, "status": {"indicator": "major"} "incidents": []}'
    status = await _fetch(body)
    assert status.error.startswith("not JSON: Expecting ',' delimiter")
    assert (status.provider, status.indicator) == ("status.example.com", "unknown")


async def test_json_that_is_not_a_summary_is_an_error():
    assert (await _fetch("[1, 2]")).error == "not a Statuspage summary: a JSON list, not an object"
    assert (await _fetch(b"\xff\xfe garbage")).error.startswith("not JSON")
    assert (await _fetch("<html>maintenance</html>", status=503)).error == "HTTP 503 from the status page"


async def test_missing_and_odd_fields_are_tolerated_one_by_one():
    body = {
        "status": {"indicator": "minor"},  # no description, no page
        "incidents": [
            {"id": "a1", "name": "API errors", "impact": "major", "created_at": "2014-05-14T14:22:39.441-06:00",
             "incident_updates": [{"created_at": "2014-05-14T14:30:00Z"}, {"created_at": "2014-05-14T20:23:00Z"},
                                  {"created_at": "not a time"}, "junk"]},
            {"id": "a2", "created_at": "2024-01-01T00:00:00"},  # no zone: a time we cannot place
            {"name": "no id: cannot be told apart from another"},
            "junk",
        ],
    }
    status = await _fetch(json.dumps(body), provider="openai")
    assert status.ok and (status.indicator, status.description) == ("minor", "")
    first, second = status.incidents
    assert first.created_at == datetime(2014, 5, 14, 20, 22, 39, 441000, tzinfo=UTC)  # -06:00 read as UTC
    assert first.first_update_at == datetime(2014, 5, 14, 14, 30, tzinfo=UTC)  # the earliest post, whatever order
    assert (first.status, second.name, second.created_at, second.first_post_at) == ("", "", None, None)


async def test_the_statuspage_documented_example_as_published(tmp_path):
    path = SHARED / "transcripts" / "statuspage__summary_json_docs.txt"
    need(path.exists(), f"no transcript at {path}")
    text = path.read_text(encoding="utf-8")
    body = text.split("\n\n", 1)[1]  # after the "# " header block
    assert (await _fetch(body)).error.startswith("not JSON")  # the docs' example misses a comma
    repaired = await _fetch(body.replace('"indicator": "major"\n  }\n', '"indicator": "major"\n  },\n', 1))
    assert repaired.indicator == "major" and [i.id for i in repaired.incidents] == ["cp306tmzcl0y"]
    assert repaired.incidents[0].created_at == datetime(2014, 5, 14, 20, 22, 39, 441000, tzinfo=UTC)


# --- the pure parts ------------------------------------------------------------------------------


def test_summary_url_from_the_catalog():
    assert summary_url(get_provider("anthropic").status_page) == "https://status.anthropic.com/api/v2/summary.json"
    assert summary_url("https://status.openai.com/") == "https://status.openai.com/api/v2/summary.json"


def _incident(minutes: float | None, ident: str = "i") -> VendorIncident:
    when = None if minutes is None else T0 + timedelta(minutes=minutes)
    return VendorIncident(ident, "API errors", "investigating", "major", when, None)


def test_lead_time_takes_the_earliest_post_within_the_window():
    incidents = [_incident(25, "later"), _incident(4, "first"), _incident(-300, "old"), _incident(None, "timeless")]
    assert lead_time(T0, incidents, window=timedelta(hours=1)) == (T0 + timedelta(minutes=4), 240.0)
    assert lead_time(T0, incidents, window=120.0) is None  # nothing within 2 minutes


def test_lead_time_is_negative_when_the_vendor_spoke_first():
    assert lead_time(T0, [_incident(-10)], window=1800) == (T0 - timedelta(minutes=10), -600.0)


def test_lead_time_rejects_a_negative_window():
    with pytest.raises(ValueError, match="window must not be negative"):
        lead_time(T0, [], window=-1)
