"""Before the model goes away: each provider's model listing, read and compared with what the config uses.

`LifecycleWatcher` reads the listing of every distinct endpoint (dialect, base URL, key) once per
``lifecycle.interval``, through the probes' HTTP client and with the probes' own authentication
(`probes.dialects`' ``models_request``), and raises `Notice`\\ s for the models targets and features use:

    retiring     a retirement date within ``warn_before``: one warning per step (30, 7, 1 days left)
    retired      the date has passed and the config still uses the model
    vanished     the model was in the listing and is no longer: an incident, before the first probe
                 fails with model_not_found; resolved when it is listed again
    not_listed   the listing never named the model (a typo, an alias, a model the key cannot use)
    deprecated   the listing flags it deprecated without a date (Cohere)

A date comes from the target's ``retires:``, else the listing (Azure OpenAI's
``deprecation.inference``), else `PUBLISHED` (`monitor/retirements.json`, each with its source page).
Each notice is a row of `monitor.store.lifecycle` whose unique key makes it once-only across polls and
monitors, and an `AlertEvent` of rule ``model_lifecycle`` per channel of each matching rule, queued
in the same transaction. A listing that cannot be read (down, 401, garbage) is logged and judged
again next time: it never opens an incident by itself, and an empty listing is not taken to mean
every model vanished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.alerts.events import AlertEvent, Member
from monitor.alerts.outbox import enqueue
from monitor.config.model import AiriskConfig
from monitor.store import lifecycle as store
from monitor.store.lifecycle import ModelNoticeRow
from probes.catalog import CATALOG
from probes.dialects import get_dialect
from probes.dialects.base import ListedModel
from probes.target import Target

log = logging.getLogger(__name__)

MAX_LISTING_BYTES = 4 * 1024 * 1024  # one page; the largest real listing (OpenAI's) is well under 100 KiB
MAX_PAGES = 20
LISTING_TIMEOUT_S = 30.0
CONCURRENT_LISTINGS = 4
PUBLISHED_FILE = Path(__file__).with_name("retirements.json")
SEVERITY = {"vanished": "critical", "retired": "critical", "not_listed": "warning", "deprecated": "warning"}


class ListingError(Exception):
    """A listing that could not be read; the message is safe to log (no key, no body beyond an excerpt)."""


@dataclass(frozen=True, slots=True)
class Use:
    """One model as the configuration uses it at one endpoint: through which targets, by which features."""

    provider: str
    model: str
    targets: tuple[str, ...]
    features: tuple[str, ...]  # "support_chat (primary)", "search (fallback 1)"
    criticalities: tuple[str, ...]
    primary_of: tuple[str, ...]  # the features whose first chain link uses it
    retires: date | None = None  # a target's own retires:


@dataclass(slots=True)
class Endpoint:
    """One listing to read: a representative target (its URL, key and headers) and the uses it serves."""

    name: str  # provider, URL without credentials, the key's variable name: safe to store and show
    target: Target
    uses: dict[str, Use] = field(default_factory=dict)  # by model


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing a person should know about a model's life, raised once."""

    kind: str
    action: str  # trigger | resolve (a vanished model listed again)
    key: str
    provider: str
    model: str
    endpoint: str
    message: str
    severity: str
    at: datetime
    targets: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    retires: date | None = None
    days_left: int | None = None
    source: str = ""
    incident_id: int | None = None


def load_published(path: Path = PUBLISHED_FILE) -> dict[tuple[str, str], tuple[date, str]]:
    """(provider, model) -> (retirement day, source URL), from the shipped file."""
    data = json.loads(path.read_text())
    return {(m["provider"], m["model"]): (date.fromisoformat(m["retires"]), m["source"]) for m in data["models"]}


def model_key(dialect: str, name: str) -> str:
    """A model id as listings and requests both spell it: Ollama's ``llama3`` is its ``llama3:latest``."""
    return name.removesuffix(":latest") if dialect == "ollama" else name


def safe_url(url: str) -> str:
    """``url`` without user, password, query or fragment: what may be stored and shown."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def plan(config: AiriskConfig) -> list[Endpoint]:
    """The listings to read and, for each, the models used through it (targets and feature chains)."""
    targets = {t.name: t for t in config.resolve_targets()}
    own_dates = {t.target_name: t.retires for t in config.targets if t.retires is not None}
    for feature in config.features.values():  # a chain may name a catalog provider with no target of its own
        for link in feature.chain:
            if link.backend and link.backend not in targets and link.backend in CATALOG:
                targets[link.backend] = Target.from_provider(link.backend)
    used_by: dict[str, list[tuple[str, int, str]]] = {}
    for name, feature in config.features.items():
        for position, link in enumerate(feature.chain):
            if link.backend:
                used_by.setdefault(link.backend, []).append((name, position, feature.criticality))
    endpoints: dict[tuple, Endpoint] = {}
    for target in targets.values():
        opts = target.options
        key = (target.dialect, target.base_url.rstrip("/"), target.key_env, bool(opts.get("azure")),
               str(opts.get("api_version", "")), tuple(sorted(target.headers.items())))
        endpoint = endpoints.get(key)
        if endpoint is None:
            # Named by the key's variable, never the key: two keys on one URL may see different listings.
            name = f"{target.provider} {safe_url(target.base_url)}" + (f" ({target.key_env})" if target.key_env else "")
            endpoint = endpoints[key] = Endpoint(name, target)
        uses = used_by.get(target.name, [])
        features = tuple(f"{f} ({'primary' if i == 0 else f'fallback {i}'})" for f, i, _ in uses)
        old = endpoint.uses.get(target.model)
        merged = Use(
            provider=target.provider, model=target.model,
            targets=(*(old.targets if old else ()), target.name),
            features=(*(old.features if old else ()), *features),
            criticalities=tuple(dict.fromkeys((*(old.criticalities if old else ()), *(c for _, _, c in uses)))),
            primary_of=(*(old.primary_of if old else ()), *(f for f, i, _ in uses if i == 0)),
            retires=own_dates.get(target.name) or (old.retires if old else None))
        endpoint.uses[target.model] = merged
    return list(endpoints.values())


async def read_listing(client: httpx.AsyncClient, target: Target) -> list[ListedModel]:
    """Every page of ``target``'s model listing (at most `MAX_PAGES`, each at most `MAX_LISTING_BYTES`).

    Raises `ListingError` for anything but a readable listing: a transport error, a status other than
    200, a body too large or not in the documented shape."""
    dialect = get_dialect(target.dialect)
    models: list[ListedModel] = []
    page: str | None = None
    tokens: set[str] = set()
    for _ in range(MAX_PAGES):
        spec = dialect.models_request(target, api_key=target.api_key(), page=page)
        body = await _get(client, spec.url, spec.headers, spec.params)
        try:
            read = dialect.parse_models(body)
        except ValueError as exc:
            raise ListingError(f"listing unreadable: {str(exc)[:160]}") from None
        models.extend(read.models)
        page = read.next_page
        if page is None or page in tokens:  # a token seen before would loop for ever
            return models
        tokens.add(page)
    log.warning("model listing of %s: more than %d pages; judged on the first %d", target.provider, MAX_PAGES,
                MAX_PAGES)
    return models


async def _get(client: httpx.AsyncClient, url: str, headers: dict[str, str], params: dict[str, str]) -> bytes:
    try:
        async with client.stream("GET", url, headers=headers, params=params, timeout=LISTING_TIMEOUT_S) as response:
            if response.status_code != 200:
                raise ListingError(f"listing answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_LISTING_BYTES:
                    raise ListingError(f"listing larger than {MAX_LISTING_BYTES} bytes")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise ListingError(f"listing not reached: {type(exc).__name__}") from None


class LifecycleWatcher:
    """Reads the listings on a schedule and raises lifecycle notices (see the module docstring).

    ``executor`` runs the database work (the monitor's one database thread); None: asyncio's default.
    ``published`` replaces the shipped dates (tests)."""

    def __init__(self, config: AiriskConfig, engine: Engine, client: httpx.AsyncClient,
                 executor: Executor | None = None, *,
                 published: dict[tuple[str, str], tuple[date, str]] | None = None) -> None:
        self.config = config
        self.engine = engine
        self.client = client
        self.executor = executor
        self.published = load_published() if published is None else published
        self.endpoints = plan(config)

    async def run(self, stop: asyncio.Event) -> None:
        """Checks at once, then every ``lifecycle.interval``, until ``stop`` is set. Never raises for a check
        that fails: it is logged and the next one runs on time."""
        settings = self.config.lifecycle
        if not settings.enabled or not self.endpoints:
            return
        while not stop.is_set():
            try:
                await self.check_once(datetime.now(UTC))
            except Exception:  # a defect must not end the watch for good
                log.exception("model lifecycle check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.interval)

    async def check_once(self, now: datetime) -> list[Notice]:
        """Reads every listing and returns the notices raised by this check (already stored and queued)."""
        gate = asyncio.Semaphore(CONCURRENT_LISTINGS)  # a few at a time: a monitor of 200 targets has ~10

        async def one(endpoint: Endpoint) -> list[ListedModel] | None:
            async with gate:
                try:
                    return await read_listing(self.client, endpoint.target)
                except ListingError as exc:
                    log.warning("model listing of %s not read: %s", endpoint.name, exc)
                    return None

        listings = await asyncio.gather(*(one(e) for e in self.endpoints))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._judge, list(zip(self.endpoints, listings, strict=True)),
                                          now)

    # -- judging (on the database thread) ------------------------------------------------------

    def _judge(self, listings: list[tuple[Endpoint, list[ListedModel] | None]], now: datetime) -> list[Notice]:
        raised: list[Notice] = []
        with Session(self.engine) as session:
            for endpoint, listed in listings:
                raised += self._judge_endpoint(session, endpoint, listed, now)
            enqueue(session=session, events=[e for n in raised for e in self.events(n)], now=now)
            session.commit()
        for notice in raised:
            log.warning("model lifecycle: %s", notice.message)
        return raised

    def _judge_endpoint(self, session: Session, endpoint: Endpoint, listed: list[ListedModel] | None,
                        now: datetime) -> list[Notice]:
        dialect = endpoint.target.dialect
        by_key = {model_key(dialect, m.name): m for m in listed or ()}
        judged = bool(by_key)  # no listing, or an empty one: nothing is judged missing
        seen: set[str] = set()
        if judged:
            store.mark_seen(session=session, endpoint=endpoint.name, models=[m.name for m in listed or ()], now=now)
            seen = {model_key(dialect, m) for m in store.seen_models(session=session, endpoint=endpoint.name)}
        out: list[Notice] = []
        for use in endpoint.uses.values():
            key = model_key(dialect, use.model)
            found = by_key.get(key)
            if judged and found is None:
                out += self._missing(session, endpoint, use, was_listed=key in seen, now=now)
            elif found is not None:
                out += self._listed_again(session, endpoint, use, now)
            out += self._dated(session, endpoint, use, found, now)
        return out

    def _missing(self, session: Session, endpoint: Endpoint, use: Use, *, was_listed: bool,
                 now: datetime) -> list[Notice]:
        if not was_listed:
            text = (f"{use.model} is not in {use.provider}'s model listing{_used_by(use)}: check the name, or "
                    "whether this key may use it")
            row = self._row(use, endpoint, "not_listed", f"not_listed:{endpoint.name}:{use.model}", text, now)
            stored = store.add_notice(session=session, row=row)
            return [self._notice(stored, "trigger", use)] if stored else []
        if store.open_vanished(session=session, endpoint=endpoint.name, model=use.model) is not None:
            return []
        text = (f"{use.model} has left {use.provider}'s model listing{_used_by(use)}: calls to it will fail with "
                "model_not_found")
        key = f"vanished:{endpoint.name}:{use.model}:{now.date().isoformat()}"
        row = self._row(use, endpoint, "vanished", key, text, now)
        row.opened_at = now
        stored = store.add_notice(session=session, row=row) or store.reopen(session=session, key=key)
        return [self._notice(stored, "trigger", use, at=now)] if stored else []

    def _listed_again(self, session: Session, endpoint: Endpoint, use: Use, now: datetime) -> list[Notice]:
        row = store.open_vanished(session=session, endpoint=endpoint.name, model=use.model)
        if row is None or not store.close_vanished(session=session, row=row, now=now):
            return []
        text = f"{use.model} is back in {use.provider}'s model listing{_used_by(use)}"
        return [self._notice(row, "resolve", use, at=now, message=text)]

    def _dated(self, session: Session, endpoint: Endpoint, use: Use, found: ListedModel | None,
               now: datetime) -> list[Notice]:
        retires, source = self._date(use, found)
        if retires is None:
            if found is not None and found.deprecated:
                text = f"{use.model} is deprecated by {use.provider}, no retirement date given{_used_by(use)}"
                row = self._row(use, endpoint, "deprecated", f"deprecated:{use.provider}:{use.model}", text, now)
                stored = store.add_notice(session=session, row=row)
                return [self._notice(stored, "trigger", use)] if stored else []
            return []
        days = (retires - now.date()).days
        steps = self.config.lifecycle.thresholds()
        if days <= 0:
            kind, key = "retired", f"retired:{use.provider}:{use.model}"
            text = f"{use.model}{_used_by(use)}, was retired on {retires.isoformat()}"
            step = 0
        elif days <= steps[0]:
            step = min(s for s in steps if days <= s)
            kind, key = "retiring", f"retiring:{use.provider}:{use.model}:{step}d"
            plural = "s" if days != 1 else ""
            text = f"{use.model}{_used_by(use)}, retires in {days} day{plural} ({retires.isoformat()})"
        else:
            return []
        row = self._row(use, endpoint, kind, key, text, now)
        row.retires, row.source, row.step_days = retires, source, step
        stored = store.add_notice(session=session, row=row)
        return [self._notice(stored, "trigger", use, days_left=days)] if stored else []

    def _date(self, use: Use, found: ListedModel | None) -> tuple[date | None, str]:
        if use.retires is not None:
            return use.retires, "config"
        if found is not None and found.retires is not None:
            return found.retires, "listing"
        published = self.published.get((use.provider, use.model))
        return published if published is not None else (None, "")

    @staticmethod
    def _row(use: Use, endpoint: Endpoint, kind: str, key: str, message: str, now: datetime) -> ModelNoticeRow:
        return ModelNoticeRow(key=key, kind=kind, provider=use.provider, endpoint=endpoint.name, model=use.model,
                              targets=list(use.targets), features=list(use.features), message=message, at=now)

    @staticmethod
    def _notice(row: ModelNoticeRow, action: str, use: Use, *, days_left: int | None = None,
                at: datetime | None = None, message: str | None = None) -> Notice:
        severity = SEVERITY.get(row.kind) or _retiring_severity(row.step_days)
        if action == "resolve":
            severity = "info"
        return Notice(kind=row.kind, action=action, key=row.key, provider=row.provider, model=row.model,
                      endpoint=row.endpoint, message=message or row.message, severity=severity, at=at or row.at,
                      targets=use.targets, features=use.features, retires=row.retires, days_left=days_left,
                      source=row.source, incident_id=row.id if row.kind == "vanished" else None)

    # -- alerting -------------------------------------------------------------------------------

    def events(self, notice: Notice) -> list[AlertEvent]:
        """The notice as one `AlertEvent` per channel of each ``model_lifecycle`` rule that covers one of its
        targets (and, where the rule asks, the criticality of a feature using it)."""
        alerts = self.config.alerts
        if alerts is None:
            return []
        criticalities = self._criticalities(notice)
        channels: list[str] = []
        for rule in alerts.rules:
            if rule.rule == "model_lifecycle" and any(rule.matches(t, criticalities) for t in notice.targets):
                channels += [c for c in rule.channels if c not in channels]
        dedup = f"airisk-lifecycle-{notice.key}"
        state = {"vanished": ("listed", "vanished"), "not_listed": ("used", "not listed"),
                 "retired": ("listed", "retired"), "deprecated": ("listed", "deprecated")}.get(
            notice.kind, ("listed", "retiring"))
        if notice.action == "resolve":
            state = ("vanished", "listed")
        cause: dict[str, Any] = {"model": notice.model, "lifecycle": notice.kind}
        if notice.kind == "vanished" and notice.action == "trigger":
            cause["error_kind"] = "model_not_found"  # its runbook line: move the target to a listed model
        if notice.retires is not None:
            cause["retires"] = notice.retires.isoformat()
        members = tuple(Member(target, "", notice.incident_id, dedup, *state, notice.at, cause)
                        for target in notice.targets)
        details: dict[str, Any] = {"model": notice.model, "notice": notice.kind, "endpoint": notice.endpoint,
                                   "features": list(notice.features)}
        if notice.retires is not None:
            details.update(retires=notice.retires.isoformat(), days_left=notice.days_left, source=notice.source)
        title = f"{notice.provider}: {notice.message}"
        # Unique per channel; the time tells a vanished model's second trigger (gone again) from its first.
        stamp = f"{notice.at:%Y%m%dT%H%M%S}"
        return [AlertEvent(channel=channel, rule="model_lifecycle", action=notice.action,
                           event_key=f"model_lifecycle:{notice.key}:{notice.action}:{stamp}:{channel}",
                           dedup_key=dedup, provider=notice.provider, title=title, severity=notice.severity,
                           at=notice.at, members=members, details=details)
                for channel in channels]

    def _criticalities(self, notice: Notice) -> list[str]:
        names = {f.rsplit(" (", 1)[0] for f in notice.features}
        return [self.config.features[n].criticality for n in names if n in self.config.features]


@dataclass(frozen=True, slots=True)
class RetiringPrimary:
    """A feature whose primary backend's model retires (or has left its listing) within a release's horizon."""

    feature: str
    backend: str
    provider: str
    model: str
    retires: date | None  # None: the model has already left its provider's listing
    source: str

    def line(self, today: date) -> str:
        if self.retires is None:
            return (f"{self.feature}: its primary {self.backend} ({self.model}) has left {self.provider}'s model "
                    f"listing ({self.source})")
        days = (self.retires - today).days
        when = f"retired on {self.retires.isoformat()}" if days <= 0 else \
            f"retires on {self.retires.isoformat()}, in {days} day{'s' if days != 1 else ''}"
        return f"{self.feature}: its primary {self.backend} ({self.model}) {when} (source: {self.source})"


def retiring_primaries(config: AiriskConfig, *, session: Session, today: date, within_days: float,
                       published: dict[tuple[str, str], tuple[date, str]] | None = None) -> list[RetiringPrimary]:
    """The features whose primary (first chain link) model retires on or before ``today + within_days``, or has
    left its listing (an open vanished incident), by the first date known: the target's ``retires:``, the
    stored notices (what the listings said), the shipped published dates."""
    published = load_published() if published is None else published
    stored = store.known_retirements(session=session)
    gone = {(r.provider, r.model): r.endpoint for r in store.notices(session=session, open_only=True)}
    targets = {t.name: t for t in config.resolve_targets()}
    own_dates = {t.target_name: t.retires for t in config.targets if t.retires is not None}
    out = []
    for name, feature in config.features.items():
        backend = feature.chain[0].backend
        if backend is None:
            continue
        target = targets.get(backend) or (Target.from_provider(backend) if backend in CATALOG else None)
        if target is None:
            continue
        key = (target.provider, target.model)
        if key in gone:
            out.append(RetiringPrimary(name, backend, *key, None, f"vanished incident at {gone[key]}"))
            continue
        if backend in own_dates:
            retires, source = own_dates[backend], "the target's retires:"
        elif key in stored:
            retires, source = stored[key]
        elif key in published:
            retires, source = published[key]
        else:
            continue
        if (retires - today).days <= within_days:
            out.append(RetiringPrimary(name, backend, *key, retires, source))
    return out


def _retiring_severity(step: int | None) -> str:
    return "critical" if step is not None and step <= 1 else "error" if step is not None and step <= 7 else "warning"


def _used_by(use: Use) -> str:
    """", used by support_chat (primary) and search (fallback 1)" or ", used by target x" (nothing if unused)."""
    who: Iterable[str] = use.features or (f"target {t}" for t in use.targets)
    names = list(who)
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f", used by {listed}"


__all__ = ["LifecycleWatcher", "ListingError", "Notice", "RetiringPrimary", "Use", "load_published", "model_key",
           "plan", "read_listing", "retiring_primaries"]
