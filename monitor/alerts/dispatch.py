"""The dispatcher: takes due rows from the outbox and delivers each through its channel.

Guarantee: every alert is delivered, in order per channel, and — as long as no dispatcher dies
between a receiver's "accepted" and our commit, and no receiver accepts a request it then times
out on — exactly once. Those two windows make delivery at least once; webhooks carry an
``Idempotency-Key`` and PagerDuty deduplicates by ``dedup_key``, so receivers can close them.

- A channel that is down keeps its rows pending (capped exponential backoff, then dead after
  ``retry.max_attempts`` or ``retry.max_age``): when it returns it gets all of them.
- Several dispatchers (several monitors on one PostgreSQL) share the outbox: a claim is a lease,
  rows are taken with SKIP LOCKED, and each outcome is fenced on the claim (see `outbox`).
- The database is reached through sync sessions in worker threads, so a slow commit does not
  stall the event loop, and two dispatchers in one process really run side by side. Given an
  ``executor``, its sessions run there (the monitor's one database thread, `monitor.service`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from monitor.alerts import outbox
from monitor.alerts.channels import Alert, ChannelModule, DeliveryError, registry
from monitor.alerts.events import AlertEvent
from monitor.alerts.redact import protect, redact
from monitor.config.alerts import AlertsConfig
from monitor.durations import format_duration
from monitor.store.models import AlertOutbox, utcnow

log = logging.getLogger(__name__)


class Dispatcher:
    """Delivers the outbox of ``engine`` to the channels of ``config``, through ``client``.

    ``environ`` (default ``os.environ``) holds the channels' secrets, read once here and
    registered for redaction from every log record. ``batch``: rows per claim; ``lease``: seconds
    a claim is held (rows not tried by then are handed back, so no other dispatcher can take a
    row we are still sending); ``poll``: idle wait of `run_forever`.
    """

    def __init__(self, engine: Engine, config: AlertsConfig, client: httpx.AsyncClient, *,
                 environ: Mapping[str, str] | None = None, batch: int = 50, lease: float = 120.0,
                 poll: float = 1.0, channels: Mapping[str, ChannelModule] | None = None,
                 executor: Executor | None = None) -> None:
        self.engine = engine
        self.executor = executor  # where its sessions run; None: asyncio.to_thread
        self.config = config
        self.client = client
        self.batch = batch
        self.lease = lease
        self.poll = poll
        self.modules = dict(channels or registry)
        longest = max((c.timeout for c in config.channels), default=0.0) + 5.0
        if lease <= longest:
            raise ValueError(f"lease ({lease:g}s) must be longer than the longest channel timeout + 5s ({longest:g}s)")
        self.delivered = 0
        """Alerts this dispatcher has delivered since it started."""
        environ = os.environ if environ is None else environ
        self._secrets: dict[str, str | None] = {}
        for ch in config.channels:
            field = getattr(self.modules.get(ch.type), "SECRET", None)
            env_name = getattr(ch, field) if field else None
            self._secrets[ch.name] = (environ.get(env_name) or None) if env_name else None
            if env_name and not self._secrets[ch.name]:
                log.warning("alert channel %r: environment variable %s is not set; its alerts wait", ch.name,
                            env_name, extra={"event": "alert_channel_unset", "channel": ch.name, "env": env_name})
        protect(s for s in self._secrets.values() if s)

    async def run_once(self, now: datetime | None = None) -> int:
        """Claims the due rows and delivers them; returns how many were delivered.

        Channels are served side by side; within one, rows go in order, and after a retryable
        failure the channel's remaining rows are handed back untried (they would fail the same way,
        and must not overtake the failed one).
        """
        start, t0 = now or utcnow(), time.monotonic()

        def clock() -> datetime:
            return start + timedelta(seconds=time.monotonic() - t0)

        rows = await self._db(partial(outbox.claim_due, now=start, limit=self.batch, lease=self.lease))
        by_channel: dict[str, list[AlertOutbox]] = {}
        for row in rows:
            by_channel.setdefault(row.channel, []).append(row)
        results = await asyncio.gather(*(self._serve(name, items, clock, t0) for name, items in by_channel.items()),
                                       return_exceptions=True)
        sent = 0
        for name, result in zip(by_channel, results, strict=True):
            if isinstance(result, BaseException):
                # The database failed mid-way: the channel's rows stay claimed until the lease ends.
                log.error("alert channel %r: dispatch failed", name, exc_info=result,
                          extra={"event": "alert_dispatch_failed", "channel": name})
            else:
                sent += result
        self.delivered += sent
        return sent

    async def run_forever(self, stop_event: asyncio.Event) -> None:
        """`run_once` until ``stop_event`` is set; a database error is logged and retried, never fatal."""
        failures = 0
        while not stop_event.is_set():
            try:
                delivered = await self.run_once()
            except (OperationalError, InterfaceError) as exc:  # the database is away: the 1st try and every 10th
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log.warning("alert dispatch: database unavailable (%d tries), retrying every %.0fs: %s",
                                failures, max(self.poll, 5.0), f"{type(exc).__name__}: {exc}".splitlines()[0],
                                extra={"event": "alert_dispatch_db_down", "attempt": failures})
                delivered, idle = 0, max(self.poll, 5.0)
            except Exception:
                log.exception("alert dispatch failed; retrying in %.0fs", max(self.poll, 5.0),
                              extra={"event": "alert_dispatch_failed"})
                delivered, idle = 0, max(self.poll, 5.0)
            else:
                if failures:
                    log.info("alert dispatch: database back after %d failed tries", failures,
                             extra={"event": "alert_dispatch_db_back", "attempt": failures})
                failures, idle = 0, self.poll
            if delivered < self.batch:  # a full batch means more may be due right now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop_event.wait(), idle)

    async def _serve(self, name: str, rows: list[AlertOutbox], clock: Callable[[], datetime], t0: float) -> int:
        sent = 0
        for i, row in enumerate(rows):
            if time.monotonic() - t0 + self._longest_send(row) > self.lease:
                log.info("alert channel %r: lease running out, handing back %d alerts", name, len(rows) - i,
                         extra={"event": "alert_handed_back", "channel": name, "alerts": len(rows) - i})
                await self._release(rows[i:], clock())
                break
            error = await self._send(name, row)
            now = clock()
            if error is None:
                if await self._db(partial(outbox.mark_sent, row=row, now=now)):
                    sent += 1
                    log.info("alert sent to %r: %s (try %d)", name, _title(row), row.attempts,
                             extra=_fields(row, "alert_sent"))
                else:  # our lease ran out mid-send: another dispatcher may have sent it as well
                    log.warning("alert sent to %r after its claim expired (another monitor may send it too): %s",
                                name, _title(row), extra=_fields(row, "alert_sent_late"))
                continue
            secret = self._secrets.get(name)
            secrets = [secret] if secret else []
            state = await self._db(partial(
                outbox.mark_failed, row=row, retryable=error.retryable, error=error.message, now=now,
                retry=self.config.retry, retry_after=error.retry_after, secrets=secrets))
            reason = redact(error.message, secrets)
            if state == "dead":
                why = self._given_up_why(row, error, now)
                log.error("alert to %r given up %s: %s; %s", name, why, _title(row), reason,
                          extra={**_fields(row, "alert_given_up"), "reason": reason, "why": why})
            elif state == "pending":
                delay = self.config.retry.delay(row.attempts, error.retry_after)
                log.warning("alert to %r failed (try %d), next try in %.0fs: %s; %s", name, row.attempts, delay,
                            _title(row), reason,
                            extra={**_fields(row, "alert_retry"), "delay_s": round(delay, 3), "reason": reason})
                await self._release(rows[i + 1:], now)
                break
            else:  # "": the claim ran out while we sent; the row is someone else's now
                log.warning("alert to %r failed (try %d) after its claim expired; it is tried again: %s; %s", name,
                            row.attempts, _title(row), reason,
                            extra={**_fields(row, "alert_retry"), "reason": reason})
                await self._release(rows[i + 1:], now)
                break
        return sent

    def _given_up_why(self, row: AlertOutbox, error: DeliveryError, now: datetime) -> str:
        """Which of `outbox.mark_failed`'s reasons ended the row, in words."""
        retry = self.config.retry
        if not error.retryable:
            return f"after {row.attempts} tries (the receiver refused it; retrying cannot help)"
        if row.attempts >= retry.max_attempts:
            return f"after {row.attempts} tries (retry.max_attempts)"
        age = format_duration(max((now - row.created_at).total_seconds(), 0.001))
        return f"after {row.attempts} tries and {age} (retry.max_age {format_duration(retry.max_age)})"

    async def _send(self, name: str, row: AlertOutbox) -> DeliveryError | None:
        config = self.config.channel(name)
        module = self.modules.get(config.type) if config else None
        if config is None or module is None:
            return DeliveryError(False, f"channel {name!r} is not configured")
        env_name = getattr(config, module.SECRET) if module.SECRET else None
        if env_name and not self._secrets.get(name):  # retryable: fixing the environment brings it back
            return DeliveryError(True, f"channel {name!r}: environment variable {env_name} is not set")
        # However a channel spends its time, the outcome is recorded before the claim's lease ends
        # (`_serve` starts a send only with this much lease left), so no other dispatcher sends it too.
        deadline = self._longest_send(row)
        try:
            alert = Alert(AlertEvent.from_row(row), config, self._secrets.get(name), row.attempts)
            async with asyncio.timeout(deadline):
                await module.send(alert, client=self.client)
        except DeliveryError as exc:
            return exc
        except TimeoutError:
            return DeliveryError(True, f"the {config.type} channel did not finish within {deadline:g}s")
        except Exception as exc:  # a bug in a channel must not stop the others; retried, then dead
            log.exception("alert channel %r (%s) raised", name, config.type,
                          extra={"event": "alert_channel_raised", "channel": name, "attempt": row.attempts})
            return DeliveryError(True, f"{type(exc).__name__} in the {config.type} channel")
        return None

    async def _release(self, rows: list[AlertOutbox], now: datetime) -> None:
        if rows:
            await self._db(partial(_release_all, rows=rows, now=now))

    async def _db(self, work: Callable[..., Any]) -> Any:
        """``work(session=...)`` in one transaction, in a worker thread (``executor``'s if given)."""

        def run() -> Any:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                return work(session=session)

        if self.executor is not None:
            return await asyncio.get_running_loop().run_in_executor(self.executor, run)
        return await asyncio.to_thread(run)

    def _longest_send(self, row: AlertOutbox) -> float:
        # Past this, the claim could expire while we still send (and another dispatcher send too).
        config = self.config.channel(row.channel)
        if config is None:
            return 0.0
        posts = len(row.payload.get("members", ())) if config.type == "pagerduty" else 1
        return config.timeout * max(posts, 1) + 5.0


def _title(row: AlertOutbox) -> str:
    return str(row.payload.get("title") or row.event_key)


def _fields(row: AlertOutbox, event: str) -> dict[str, Any]:
    """The structured fields of a log line about ``row`` (see `monitor.logsetup`)."""
    return {"event": event, "channel": row.channel, "rule": row.rule, "event_key": row.event_key,
            "dedup_key": row.dedup_key, "title": _title(row), "provider": row.provider, "target": row.target,
            "severity": row.payload.get("severity"), "action": row.payload.get("action"), "attempt": row.attempts}


def _release_all(*, session: Session, rows: list[AlertOutbox], now: datetime) -> None:
    for row in rows:
        outbox.release(session=session, row=row, now=now)
