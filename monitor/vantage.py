"""Each monitor proves it is alive: a heartbeat row per region, the regions lost, the dead man's switch.

Every `airisk monitor --region R` upserts its `VantageRow` every ``alerts.heartbeat_every``. A
region whose ``last_seen`` is older than ``detection.heartbeat_timeout`` is lost: it stops
counting towards the quorum (`monitor.quorum`), and one ``vantage_lost`` alert goes out. Which
surviving monitor sends it is settled in the database: the one whose transaction sets the row's
``lost_at`` (under `monitor.store.incidents.lock_quorum`), and the alert's event key holds that
time, so the outbox would keep one row even if two tried. When the region writes its heartbeat
again it clears ``lost_at`` itself and queues the "back" alert, keyed by the same time.

A region (re)started counts towards a target's quorum with the state its detector holds: one
judged since it started (its sighting's ``updated_at`` after its ``started_at``), or DOWN or
DEGRADED resumed from its open incident; UP only by default does not count until it has looked
(`monitor.service.MonitorService._judge`): counting it as up would break the quorum of an outage
the others see (a false "recovered", then a second page).

A whole installation gone quiet cannot say so itself: ``alerts.heartbeat_url`` (a
Healthchecks.io-style ping URL) is fetched by every monitor at each heartbeat, and the service
behind it pages when the pings stop. The URL is a secret: `ping` never logs it, and the monitor
registers it with `monitor.alerts.redact.protect` so that nothing else does either.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import metadata

import httpx
import sqlalchemy as sa
from sqlmodel import Session

from monitor.alerts.events import AlertEvent
from monitor.config.alerts import AlertsConfig
from monitor.durations import format_duration
from monitor.store.models import VantageRow
from monitor.store.results import _aware

log = logging.getLogger(__name__)

__all__ = ["Change", "alive_regions", "beat", "events", "mark_lost", "ping", "version"]


@dataclass(frozen=True, slots=True)
class Change:
    """A region lost (``lost`` True) or back, and the time its loss was announced (the key of both
    alerts: a loss and its return share it, and a later loss has its own)."""

    region: str
    lost: bool
    lost_at: datetime
    last_seen: datetime
    host: str = ""


def version() -> str:
    try:
        return metadata.version("airisk")
    except metadata.PackageNotFoundError:  # a source checkout that was never installed
        return ""


def beat(*, session: Session, region: str, now: datetime, started_at: datetime, host: str | None = None,
         pid: int | None = None, version_: str | None = None) -> Change | None:
    """Writes ``region``'s heartbeat at ``now``; a `Change` (back) when its loss had been announced."""
    now = _aware(now, "now")
    row = session.get(VantageRow, region)
    back = None
    if row is None:
        row = VantageRow(region=region, started_at=started_at, last_seen=now)
    elif row.lost_at is not None:
        back = Change(region, False, row.lost_at, row.last_seen, row.host)
        row.lost_at = None
    row.host = host if host is not None else socket.gethostname()
    row.pid = pid if pid is not None else os.getpid()
    row.version = version_ if version_ is not None else version()
    row.started_at, row.last_seen = _aware(started_at, "started_at"), now
    session.add(row)
    session.flush()
    return back


def mark_lost(*, session: Session, now: datetime, timeout: float) -> list[Change]:
    """Regions whose heartbeat is older than ``timeout`` s and whose loss is not yet announced: marked
    lost at ``now`` and returned (call under `lock_quorum`, so only one monitor announces each)."""
    now = _aware(now, "now")
    rows = session.exec(sa.select(VantageRow).where(
        VantageRow.last_seen < now - timedelta(seconds=timeout), VantageRow.lost_at.is_(None))
        .order_by(VantageRow.region)).scalars().all()
    out = []
    for row in rows:
        row.lost_at = now
        session.add(row)
        out.append(Change(row.region, True, now, row.last_seen, row.host))
    session.flush()
    return out


def alive_regions(*, session: Session, now: datetime, timeout: float) -> dict[str, datetime]:
    """Regions whose heartbeat is at most ``timeout`` s old, each with when its monitor started."""
    cutoff = _aware(now, "now") - timedelta(seconds=timeout)
    rows = session.exec(sa.select(VantageRow.region, VantageRow.started_at).where(VantageRow.last_seen >= cutoff))
    return {region: started for region, started in rows}


def vantages(*, session: Session) -> list[VantageRow]:
    """Every monitor that ever wrote a heartbeat, by region."""
    return list(session.exec(sa.select(VantageRow).order_by(VantageRow.region)).scalars())


def label(region: str) -> str:
    return region or "(default region)"


def events(changes: list[Change], *, config: AlertsConfig, now: datetime) -> list[AlertEvent]:
    """The alerts for regions lost and back, to the channels of every ``vantage_lost`` rule."""
    out: dict[tuple[str, str, str, str], AlertEvent] = {}
    for change in changes:
        stamp = f"{change.lost_at:%Y%m%dT%H%M%S.%f}"
        if change.lost:
            silent = (now - change.last_seen).total_seconds()
            title = f"vantage point {label(change.region)} lost: no heartbeat for {format_duration(silent)}"
        else:
            title = f"vantage point {label(change.region)} is back"
        details = {"region": change.region, "host": change.host, "last_seen": change.last_seen.isoformat()}
        for rule in config.rules:
            if rule.rule != "vantage_lost":
                continue
            for channel in rule.channels:
                kind = "lost" if change.lost else "back"
                out[(channel, kind, change.region, stamp)] = AlertEvent(
                    channel=channel, rule="vantage_lost", action="trigger" if change.lost else "resolve",
                    event_key=f"vantage_{kind}:{change.region}@{stamp}:{channel}",
                    dedup_key=f"airisk-vantage-{change.region}@{stamp}", provider="airisk",
                    title=title, severity="error" if change.lost else "info", at=now, details=details)
    return list(out.values())


async def ping(client: httpx.AsyncClient, url: str, *, wait: float = 10.0) -> bool:
    """GETs the dead man's switch URL; False (logged, without the URL) when it did not answer 2xx."""
    try:
        response = await client.get(url, timeout=wait)
    except httpx.HTTPError as exc:
        log.warning("heartbeat ping failed: %s", type(exc).__name__, extra={"event": "heartbeat_ping_failed"})
        return False
    if not response.is_success:
        log.warning("heartbeat ping answered HTTP %d", response.status_code,
                    extra={"event": "heartbeat_ping_failed"})
        return False
    return True
