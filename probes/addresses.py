"""Is a host this machine? One answer for every server that binds an address or checks a ``Host``.

``localhost`` and every loopback IP (127.0.0.0/8, ``::1``) are; any other name is not, since a name
that resolves to loopback here may resolve elsewhere for someone else (DNS rebinding).
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (``[::1]`` with or without brackets), else False."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
