"""TLS over a `probes.netbackend.TimedStream`, by ``ssl.MemoryBIO``: the timings stay the raw stream's.

Split from `probes.netbackend` for size; it is that module's TLS half (see its docstring for
the timing contract: ``last_rx_ns`` of a TLS stream is the kernel arrival stamp of the
ciphertext that completed the plaintext returned).
"""

# httpcore's AsyncNetworkStream interface takes `timeout` arguments.
# ruff: noqa: ASYNC109

from __future__ import annotations

import operator
import ssl
from typing import Any

import httpcore

from probes.netbackend import _TLS_RAW_READ, TimedStream, _guard


def _from_raw(name: str) -> property:
    return property(operator.attrgetter(f"_raw.{name}"), doc=f"The raw stream's ``{name}``.")


class TimedTLSStream(TimedStream):
    """TLS over a `TimedStream`, by ``ssl.MemoryBIO``; its timings are the raw stream's.

    ``last_rx_ns`` is the raw arrival stamp of the ciphertext that completed the
    plaintext a read returned (the newest ciphertext fed to TLS when the read returned);
    before the first read it is the arrival of the handshake's last flight.
    """

    dns_started_ns = _from_raw("dns_started_ns")
    connect_started_ns = _from_raw("connect_started_ns")
    connected_ns = _from_raw("connected_ns")
    tls_done_ns = _from_raw("tls_done_ns")
    last_rx_ns = _from_raw("last_rx_ns")
    last_rx_kernel = _from_raw("last_rx_kernel")
    request_started_ns = _from_raw("request_started_ns")
    requests = _from_raw("requests")

    def __init__(
        self, raw: TimedStream, ssl_object: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO
    ) -> None:
        # Deliberately not TimedStream.__init__: all socket state and timings live on `raw`.
        self._raw = raw
        self._ssl = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing

    async def _feed(self) -> bool:
        """Flush what TLS wants to send, then give it the next ciphertext; False at EOF."""
        raw = self._raw
        if self._outgoing.pending:
            await raw._send(self._outgoing.read())
        data = await raw._recv(_TLS_RAW_READ)
        if data:
            self._incoming.write(data)
            return True
        self._incoming.write_eof()
        return False

    async def _handshake(self) -> None:
        more = True
        while True:
            try:
                self._ssl.do_handshake()
                break
            except ssl.SSLWantReadError:
                if not more:  # OpenSSL raises SSLEOFError itself after write_eof; belt and braces
                    raise ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "EOF during the TLS handshake") from None
                more = await self._feed()
        if self._outgoing.pending:
            await self._raw._send(self._outgoing.read())

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._raw._rx_since_tx = True
        try:
            data = self._ssl.read(max_bytes)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except ssl.SSLError as exc:
            raise httpcore.ReadError(exc) from exc
        else:
            if not self._outgoing.pending:
                return data
            return await _guard(self._flush(data), timeout, httpcore.ReadTimeout, httpcore.ReadError)
        return await _guard(self._read_slow(max_bytes), timeout, httpcore.ReadTimeout, httpcore.ReadError)

    async def _flush(self, data: bytes) -> bytes:
        await self._raw._send(self._outgoing.read())
        return data

    async def _read_slow(self, max_bytes: int) -> bytes:
        while True:
            more = await self._feed()
            try:
                data = self._ssl.read(max_bytes)
            except ssl.SSLWantReadError:
                if more:
                    continue
                data = b""
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                # close_notify, or a ragged EOF: both end the stream, as in httpcore's anyio
                # backend (h11 then tells a cut body from a complete one).
                data = b""
            if self._outgoing.pending:  # e.g. a TLS 1.3 KeyUpdate answer
                await self._raw._send(self._outgoing.read())
            return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        raw = self._raw
        raw._note_write()
        try:
            self._ssl.write(buffer)
        except ssl.SSLWantReadError:  # only mid-renegotiation (TLS 1.2)
            await _guard(self._write_slow(buffer), timeout, httpcore.WriteTimeout, httpcore.WriteError)
            return
        except ssl.SSLError as exc:
            raise httpcore.WriteError(exc) from exc
        await raw._write_bytes(self._outgoing.read(), timeout)

    async def _write_slow(self, buffer: bytes) -> None:
        while True:
            if not await self._feed():
                raise ConnectionResetError("EOF during TLS renegotiation")
            try:
                self._ssl.write(buffer)
                break
            except ssl.SSLWantReadError:
                continue
        await self._raw._send(self._outgoing.read())

    async def aclose(self) -> None:
        # No close_notify, like httpcore's anyio backend (standard_compatible=False).
        await self._raw.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> TimedTLSStream:
        raise NotImplementedError("TLS over TLS (an HTTPS proxy) is not supported by TimedTLSStream")

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._ssl
        return self._raw.get_extra_info(info)

