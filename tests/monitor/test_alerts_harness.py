"""The alert tests' harness: real receivers on loopback, fresh databases, and checks that they behave.

`Receiver` is one aiohttp server standing in for a generic webhook receiver, Slack's incoming
webhooks (``/slack/...``), PagerDuty's Events API (``/pd/v2/enqueue``) and the endpoint of an
Apprise ``json://`` URL. It records every request, can answer the next ones with an error status,
and can be stopped (its port closed) and started again on the same port. `SmtpSink` is an
aiosmtpd server recording each message. `alert_databases` yields a fresh outbox database: a SQLite
file, and a PostgreSQL schema of its own (``AIRISK_TEST_POSTGRES``), built with ``create_all``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlmodel import SQLModel

from monitor.store.models import AlertOutbox
from tests.conftest import need
from tests.monitor.conftest import PG_URL, pg_available


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    status: int  # what the receiver answered


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.fail_next: deque[int] = deque()  # statuses for the next requests, then normal answers
        self.fail_paths: dict[str, deque[int]] = {}  # the same, per path prefix (checked first)
        self.echo_errors = True  # error bodies quote the request, as some real receivers do
        self.delay = 0.0  # seconds before answering
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accepted(self, prefix: str = "/") -> list[Request]:
        return [r for r in self.requests if r.path.startswith(prefix) and 200 <= r.status < 300]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        # No access log: it would print request paths, and ours hold the secrets under test.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, prefix: str = "/", within: float = 10.0) -> list[Request]:
        """Waits (at most ``within`` seconds) until ``count`` requests under ``prefix`` were accepted."""
        async with asyncio.timeout(within):
            while len(self.accepted(prefix)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.accepted(prefix)

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        scripted = next((q for prefix, q in self.fail_paths.items() if request.path.startswith(prefix) and q), None)
        queue = scripted if scripted is not None else self.fail_next
        status = queue.popleft() if queue else (202 if request.path.startswith("/pd/") else 200)
        self.requests.append(Request(request.path, dict(request.headers), body, status))
        self.changed.set()
        headers = {"Retry-After": "0"} if status == 429 else {}
        if status >= 300:
            echo = f"rejected {request.path}: {raw.decode(errors='replace')}" if self.echo_errors else "no"
            return web.Response(status=status, text=echo, headers=headers)
        if request.path.startswith("/pd/"):
            return web.json_response({"status": "success", "message": "Event processed",
                                      "dedup_key": body.get("dedup_key")}, status=202)
        return web.Response(text="ok")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SmtpSink:
    """A loopback SMTP server; ``refuse`` makes it reject recipients with that reply.

    ``tls``: None (plain SMTP), "starttls" (offered and required before any mail or login) or
    "implicit" (SMTPS: TLS from the first byte), with a certificate for 127.0.0.1 from ``ca`` (a
    ``trustme.CA``, which the client must be told to trust). ``encrypted`` says, per message,
    whether it arrived over TLS; ``logins`` lists the user names that logged in."""

    users: dict[str, str] = field(default_factory=dict)
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    refuse: str | None = None
    tls: str | None = None
    ca: Any = None
    encrypted: list[bool] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    port: int = 0
    _controller: Controller | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.encrypted.append(session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and self.users.get(auth_data.login.decode()) == \
            auth_data.password.decode()
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if self.users:
            # Without TLS, the server offers AUTH anyway: the client is the one that must refuse.
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": self.tls == "starttls"}
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert("127.0.0.1").configure_cert(context)
            # aiosmtpd counts only STARTTLS as TLS for AUTH; an implicit-TLS connection is TLS throughout.
            kwargs |= {"tls_context": context, "require_starttls": True} if self.tls == "starttls" else \
                {"ssl_context": context}
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()


@dataclass
class OutboxDb:
    """A fresh database with the tables; ``engine()`` opens one more engine on it (another "process")."""

    kind: str
    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    engines: list[sa.Engine] = field(default_factory=list)

    def engine(self) -> sa.Engine:
        engine = sa.create_engine(self.url, connect_args=dict(self.connect_args))
        self.engines.append(engine)
        return engine

    def rows(self) -> list[AlertOutbox]:
        with sa.orm.Session(self.engines[0]) as session:
            return list(session.scalars(sa.select(AlertOutbox).order_by(AlertOutbox.id)))


@contextlib.contextmanager
def alert_database(kind: str, tmp_path: Path) -> Iterator[OutboxDb]:
    """SQLite: a file (dispatchers use worker threads); PostgreSQL: a schema dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        db = OutboxDb(kind, f"sqlite:///{tmp_path / 'alerts.db'}", {"timeout": 30})
    else:
        need(pg_available(), f"PostgreSQL not reachable at {PG_URL.rsplit('@', 1)[-1]}")
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        db = OutboxDb(kind, PG_URL, {"options": f"-csearch_path={schema}"})
    try:
        SQLModel.metadata.create_all(db.engine())
        yield db
    finally:
        for engine in db.engines:
            engine.dispose()
        if kind != "sqlite":
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()


# --- the receivers themselves ------------------------------------------------------------------


async def test_receiver_answers_queued_failures_then_accepts():
    receiver = Receiver()
    await receiver.start()
    receiver.fail_next.extend([503])
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            first = await client.post(receiver.url + "/hook/x", json={"n": 1})
            second = await client.post(receiver.url + "/pd/v2/enqueue", json={"dedup_key": "k"})
    finally:
        await receiver.stop()
    assert (first.status_code, second.status_code) == (503, 202)
    assert "rejected /hook/x" in first.text
    assert second.json()["dedup_key"] == "k"
    assert [r.body for r in receiver.accepted()] == [{"dedup_key": "k"}]


async def test_receiver_can_be_stopped_and_restarted_on_the_same_port():
    receiver = Receiver()
    await receiver.start()
    port = receiver.port
    async with httpx.AsyncClient(trust_env=False) as client:
        await receiver.stop()
        try:
            await client.post(receiver.url + "/hook", json={})
            raise AssertionError("the port should be closed")
        except httpx.ConnectError:
            pass
        await receiver.start()
        try:
            response = await client.post(receiver.url + "/hook", json={})
        finally:
            await receiver.stop()
    assert receiver.port == port
    assert response.status_code == 200
