"""A send has one deadline, whole: a receiver that trickles its answer a byte a second (each byte
restarting a per-phase timeout) is cut at the channel's ``timeout``, and the dispatcher records
the outcome of any send before the outbox row's lease runs out."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import httpx
import pytest
import trustme
from sqlalchemy.orm import Session

from monitor.alerts import DeliveryError, Dispatcher, enqueue, events_for
from monitor.alerts.channels import email, webhook
from monitor.config.alerts import AlertsConfig
from tests.conftest import until
from tests.monitor.test_alerts_channels import alert_for, config, down, email_config
from tests.monitor.test_alerts_harness import SmtpSink, alert_database


class Trickler:
    """A loopback server that reads what it is sent (an HTTP request, or nothing for SMTP), then
    answers ``answer`` one byte a second; ``cut`` is set once the client has hung up on it."""

    def __init__(self, answer: bytes, *, http: bool) -> None:
        self.answer = answer
        self.http = http
        self.sent = 0
        self.cut = False
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Trickler:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.http:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
            for byte in self.answer:
                writer.write(bytes([byte]))
                await writer.drain()
                self.sent += 1
                # A hung-up client shows as EOF here (or a reset on the next write).
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                        break
            else:
                return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        self.cut = True
        writer.close()


async def test_a_receiver_trickling_a_byte_a_second_is_cut_at_the_total_deadline():
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
    cfg = config({"type": "webhook", "url_env": "HOOK_URL", "timeout": "2s"})
    async with Trickler(answer, http=True) as receiver, httpx.AsyncClient(trust_env=False) as client:
        alert = alert_for(cfg, [down()], f"http://127.0.0.1:{receiver.port}/hook")
        with pytest.raises(DeliveryError) as caught:
            # Bounded here too, so old code (which waits for all ~70 bytes) fails rather than hangs.
            await asyncio.wait_for(webhook.send(alert, client=client), 20)
        assert caught.value.retryable
        assert caught.value.message == "no answer within 2s (the deadline for the whole exchange)"
        assert 1 <= receiver.sent < len(answer)
        await until(lambda: receiver.cut, 10, "the receiver to see the connection closed")


async def test_an_smtp_server_trickling_its_replies_is_cut_at_the_total_deadline():
    async with Trickler(b"220 slow.example.com ESMTP ready\r\n", http=False) as server:
        cfg = email_config(server.port, timeout="2s")
        alert = alert_for(cfg, [down()], None)
        with pytest.raises(DeliveryError) as caught:
            await asyncio.wait_for(email.send(alert, client=None), 20)  # type: ignore[arg-type]
        assert caught.value.retryable and caught.value.message == "no answer within 2s"
        assert 1 <= server.sent < 30
        await until(lambda: server.cut, 10, "the server to see the connection closed")


class TrickleRelay:
    """A relay to ``upstream``: what the client sends goes through at once, what the server answers
    comes back a byte every quarter second (a TLS handshake, too)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> TrickleRelay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, trickle: bool) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(4096):
                    for piece in ([data[i:i + 1] for i in range(len(data))] if trickle else [data]):
                        dst.write(piece)
                        await dst.drain()
                        if trickle:
                            await asyncio.sleep(0.25)
            dst.close()

        for task in (pipe(reader, up_writer, False), pipe(up_reader, writer, True)):
            self._tasks.add(asyncio.create_task(task))


async def test_an_smtps_server_trickling_its_tls_handshake_is_cut_at_the_total_deadline(tmp_path, monkeypatch):
    """Before the channel's own deadline can see the socket (smtplib hands it over once TLS is up),
    the handshake is bounded by the socket timeout, which CPython applies to the handshake as a
    whole, not per read: a server trickling it is still cut at the channel's timeout."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # the client trusts the server's certificate
    sink = SmtpSink(tls="implicit", ca=ca)
    sink.start()
    async with TrickleRelay(sink.port) as relay:
        cfg = email_config(relay.port, starttls=None, smtps=True, timeout="2s")
        with pytest.raises(DeliveryError) as caught:
            await asyncio.wait_for(email.send(alert_for(cfg, [down()], None), client=None), 20)  # type: ignore[arg-type]
        assert caught.value.retryable and caught.value.message == "no answer within 2s"
    sink.stop()
    assert not sink.messages


class _Hanging:
    """A channel that never finishes (a bug, or a library with only per-phase timeouts)."""

    SECRET = None

    @staticmethod
    async def send(alert, *, client) -> None:
        await asyncio.sleep(3600)


@pytest.mark.parametrize("kind", ["sqlite"])
async def test_the_dispatcher_ends_a_send_that_overruns_before_the_lease_does(kind, tmp_path):
    alerts = AlertsConfig.model_validate({
        "channels": [{"name": "hook", "type": "webhook", "url_env": "HOOK_URL", "timeout": "1s"}],
        "rules": [{"rule": "down", "channels": ["hook"]}]})
    with alert_database(kind, tmp_path) as db:
        with Session(db.engine()) as session, session.begin():
            enqueue(session=session, events=events_for([down()], config=alerts, now=datetime.now(UTC)))
        async with httpx.AsyncClient() as client:
            dispatcher = Dispatcher(db.engine(), alerts, client, environ={}, lease=30,
                                    channels={"webhook": _Hanging})
            assert await asyncio.wait_for(dispatcher.run_once(), 20) == 0
        [row] = db.rows()
    # 1 s of channel timeout + 5 s of slack: the most `_serve` allows for one send under its lease.
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error == "the webhook channel did not finish within 6s"
