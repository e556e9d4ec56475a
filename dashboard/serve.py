"""Starting the dashboard: ``python -m dashboard [--address A] [--port P]``, bound to 127.0.0.1 unless told.

Streamlit alone binds every interface by default; this binds loopback, and refuses another address
unless the dashboard is protected (``AIRISK_DASHBOARD_PASSWORD`` or ``AIRISK_DASHBOARD_AUTH=oidc``) or
``--allow-open`` says it is on purpose (behind an authenticating proxy, say). Every way of starting the
dashboard (`airisk dashboard`, `airisk up`) goes through `command` and `refusal` here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from dashboard import settings
from probes.addresses import is_loopback

APP = Path(__file__).resolve().parent / "app.py"
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8501
# A viewer sees the app, not Streamlit's developer menu ("Deploy", rerun, settings, screencast):
# "minimal" keeps only the menu items the app itself declares.
TOOLBAR_MODE = "minimal"


def command(*, address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT, python: str = sys.executable) -> list[str]:
    """The ``streamlit run`` command line for the app (headless, no usage statistics sent, no developer
    toolbar)."""
    return [python, "-m", "streamlit", "run", str(APP), "--server.address", address, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", TOOLBAR_MODE]


def refusal(address: str, allow_open: bool, env: Mapping[str, str] = os.environ, *,
            flag: str = "--allow-open") -> str | None:
    """Why serving on ``address`` is refused, or None. ``flag`` is the caller's name for ``allow_open``,
    which the message names as the way to serve it open on purpose."""
    if is_loopback(address) or allow_open or settings.password(env) or settings.oidc(env):
        return None
    return (f"refusing to serve the dashboard on {address} unprotected: set {settings.PASSWORD_ENV} (a shared "
            f"password) or {settings.AUTH_ENV}=oidc (dashboard/README.md), or pass {flag}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--allow-open", action="store_true", help="serve a non-loopback address without protection")
    args = parser.parse_args(argv)
    if (why := refusal(args.address, args.allow_open)) is not None:
        parser.exit(2, f"airisk dashboard: {why}\n")
    cmd = command(address=args.address, port=args.port)
    os.execv(cmd[0], cmd)
