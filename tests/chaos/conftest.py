"""Fixtures shared by the chaos tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=[True, False], ids=["relay", "asgi"])
def course(request) -> bool:
    """The proxy's two courses for a request meeting no fault: relayed by callbacks
    (`chaos.proxyfast`, ``serve_proxy(fast=True)``, the default) or the ASGI application's task
    (``fast=False``, which every request with a fault in force takes). A test of the proxy's
    pass-through takes this fixture and runs on both."""
    return request.param
