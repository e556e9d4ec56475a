"""Who may see the dashboard. It binds 127.0.0.1 by default (`dashboard.serve`); on a shared host,
protect it with a password (``AIRISK_DASHBOARD_PASSWORD``) or Streamlit's OIDC login
(``AIRISK_DASHBOARD_AUTH=oidc`` with an ``[auth]`` section in ``.streamlit/secrets.toml``).
dashboard/README.md says how.

Wrong passwords back off (`Backoff`): after a wrong guess a client must wait before its next guess is
even compared, 1 s, then 2, 4 ... up to `Backoff.cap`; a right password (after the wait) clears it.
A client is the address its browser connects from (``st.context.ip_address``: the TCP peer, or the
``X-Forwarded-For`` of a reverse proxy on the same host, which uvicorn trusts from 127.0.0.1 only),
so opening new browser sessions buys no new guesses. Streamlit gives no address for a loopback
connection (nor under `AppTest`): all of those are one client, "loopback", never one per session.
Behind a proxy on another host every viewer shares the proxy's address, and so one back-off:
stricter, never looser (an attacker there can make others wait, at most `Backoff.cap`, but not guess
faster).
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

import streamlit as st

Verdict = Literal["ok", "wrong", "wait"]
_OK_KEY = "_airisk_password_ok"
_INPUT_KEY = "_airisk_password"
_SAID_KEY = "_airisk_password_said"


def password_ok(given: str, expected: str) -> bool:
    """Constant-time comparison, so response times do not leak how much of a guess was right."""
    return hmac.compare_digest(given.encode(), expected.encode())


class Backoff:
    """Per-client delays after wrong guesses: ``first`` seconds after the first, doubling with each
    further wrong guess, at most ``cap``; `succeeded` clears a client. Thread-safe (Streamlit runs each
    browser session's script in a thread of its own) and bounded: at most ``max_clients`` are
    remembered (the longest idle forgotten first), and a client idle for ``forget_after`` seconds
    starts again from ``first``."""

    def __init__(self, *, first: float = 1.0, cap: float = 300.0, forget_after: float = 3600.0,
                 max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.first, self.cap, self.forget_after, self.max_clients = first, cap, forget_after, max_clients
        self.clock = clock
        self._lock = threading.RLock()
        self._clients: OrderedDict[str, tuple[int, float]] = OrderedDict()  # client -> (failures, blocked until)

    def guess(self, client: str, right: Callable[[], bool]) -> tuple[Verdict, float]:
        """Judges one guess by ``client``, atomically (two sessions guessing at once are judged one after
        the other): ``("wait", s)`` while it must still wait, without calling ``right``; else
        ``("ok", 0)`` if ``right()``, or ``("wrong", s)`` with the wait it has now earned."""
        with self._lock:
            if (wait := self.wait(client)) > 0:
                return "wait", wait
            if right():
                self.succeeded(client)
                return "ok", 0.0
            return "wrong", self.failed(client)

    def wait(self, client: str) -> float:
        """Seconds before ``client`` may guess again (0: now)."""
        with self._lock:
            now = self.clock()
            entry = self._current(client, now)
            return max(0.0, entry[1] - now) if entry else 0.0

    def failed(self, client: str) -> float:
        """Records a wrong guess by ``client``; returns the seconds it must now wait."""
        with self._lock:
            now = self.clock()
            failures = (entry[0] if (entry := self._current(client, now)) else 0) + 1
            delay = min(self.cap, self.first * 2 ** min(failures - 1, 62))
            self._clients[client] = (failures, now + delay)
            self._clients.move_to_end(client)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
            return delay

    def succeeded(self, client: str) -> None:
        """A right password: ``client`` starts afresh."""
        with self._lock:
            self._clients.pop(client, None)

    def _current(self, client: str, now: float) -> tuple[int, float] | None:
        entry = self._clients.get(client)
        if entry is not None and now - entry[1] > self.forget_after:
            del self._clients[client]
            return None
        return entry


GUESSES = Backoff()
"""The one back-off of this dashboard process, shared by every browser session."""


def client_id() -> str:
    """Who is guessing: ``ip:<address>`` of the connection, or ``loopback`` where Streamlit gives none."""
    ip = st.context.ip_address
    return f"ip:{ip}" if isinstance(ip, str) and ip else "loopback"  # AppTest's runtime gives a mock


def _seconds(s: float) -> str:
    n = max(1, math.ceil(s))
    return f"{n} second{'s' if n != 1 else ''}"


def _guess(expected: str) -> None:
    # on_change of the password box: each submitted guess is judged once (a rerun for any other reason
    # does not count it again), and the box is emptied so the guess does not linger in session state.
    given = st.session_state.get(_INPUT_KEY) or ""
    st.session_state[_INPUT_KEY] = ""
    if not given:
        return
    verdict, wait = GUESSES.guess(client_id(), lambda: password_ok(given, expected))
    if verdict == "ok":
        st.session_state[_OK_KEY] = True
        st.session_state.pop(_SAID_KEY, None)
    elif verdict == "wait":
        st.session_state[_SAID_KEY] = f"Too many wrong passwords: try again in {_seconds(wait)}."
    else:
        st.session_state[_SAID_KEY] = f"Wrong password. The next try is taken in {_seconds(wait)}."


def require_password(expected: str) -> None:
    """Asks for the password until it is given once in this browser session; stops the page until then.

    A guess made while the client backs off (`GUESSES`) is refused without being compared."""
    if st.session_state.get(_OK_KEY):
        return
    st.title("airisk")
    st.text_input("Password", type="password", key=_INPUT_KEY, on_change=_guess, args=(expected,))
    if said := st.session_state.get(_SAID_KEY):
        st.error(said)
    st.stop()


def require_login() -> None:
    """Streamlit's OIDC login (`st.login`): stops the page until the user has logged in."""
    # st.user has no is_logged_in until an [auth] section is configured: read it as a mapping.
    if st.user.get("is_logged_in"):
        with st.sidebar:
            st.caption(f"Logged in as {st.user.get('email') or st.user.get('name') or 'you'}")
            st.button("Log out", on_click=st.logout)
        return
    st.title("airisk")
    st.write("Log in to see the dashboard.")
    st.button("Log in", on_click=st.login)
    st.caption("The identity provider is configured in `.streamlit/secrets.toml` (`[auth]`); see dashboard/README.md.")
    st.stop()
