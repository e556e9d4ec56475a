"""The shared HTTP client probes use: httpx, keep-alive, on the arrival-stamping `TimedBackend`.

One client serves every probe, as one client serves a real SDK user: its pool keeps
connections alive, so most probes measure a warm connection (``stream_timing(r).requests
> 1``) and only the first or a re-opened one pays DNS + TCP + TLS.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from probes.netbackend import TimedBackend, TimedStream
from probes.pool import LifoPool

__all__ = ["TimedTransport", "make_client", "stream_timing"]


class TimedTransport(httpx.AsyncHTTPTransport):
    """`httpx.AsyncHTTPTransport` whose connections come from a `TimedBackend`.

    HTTP/1.1 only (the timing of a request is the timing of its connection), no proxy.
    """

    def __init__(
        self,
        verify: ssl.SSLContext | str | bool = True,
        trust_env: bool = True,
        limits: httpx.Limits | None = None,
        *,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
        network_backend: TimedBackend | None = None,
    ) -> None:
        if limits is None:  # httpx's own default
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(
            verify=verify,
            trust_env=trust_env,
            http1=True,
            http2=False,
            limits=limits,
            uds=uds,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
        )
        # httpx 0.28 has no public parameter for httpcore's network backend, and httpcore's
        # pool serialises queued requests onto one connection (see probes.pool), so the pool
        # `super()` built is replaced by our LIFO pool on the timed backend. Its SSL context is
        # reused rather than built again (verify and trust_env honoured once). No `cert`:
        # httpx 0.28 deprecates it; load a client certificate into `verify`'s SSLContext.
        self._pool = LifoPool(
            ssl_context=self._pool._ssl_context,
            max_connections=limits.max_connections or 1000,
            keepalive_expiry=limits.keepalive_expiry,
            local_address=local_address,
            uds=uds,
            socket_options=socket_options,
            network_backend=network_backend or TimedBackend(),
        )


def make_client(
    *,
    max_connections: int = 200,
    keepalive_expiry: float = 30.0,
    verify: ssl.SSLContext | str | bool = True,
    backend: TimedBackend | None = None,
    **client_kwargs: Any,
) -> httpx.AsyncClient:
    """One shared keep-alive `httpx.AsyncClient` on a `TimedTransport`.

    All ``max_connections`` may stay alive between probes. ``client_kwargs`` go to
    `httpx.AsyncClient` unchanged (``timeout``, ``headers``, ``base_url``, ...); httpx's
    defaults, timeouts and ``trust_env`` included, stand unless given. Because the
    transport is explicit, httpx does not pick proxies up from the environment.
    """
    # Keep-alive up to the full pool. (httpcore 1.0.9 also counts *all* connections, not
    # idle ones, against max_keepalive_connections, so a lower cap closes idle ones early.)
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=keepalive_expiry,
    )
    trust_env = client_kwargs.get("trust_env", True)
    transport = TimedTransport(verify=verify, trust_env=trust_env, limits=limits, network_backend=backend)
    return httpx.AsyncClient(transport=transport, **client_kwargs)


def stream_timing(response: httpx.Response) -> TimedStream | None:
    """The timed connection that carried ``response`` (plain or TLS), or ``None`` when it was
    not one of ours (e.g. `httpx.MockTransport`, another transport)."""
    stream = response.extensions.get("network_stream")
    return stream if isinstance(stream, TimedStream) else None
