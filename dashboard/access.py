"""Who may see the dashboard. It binds 127.0.0.1 by default (`dashboard.serve`); on a shared host,
protect it with a password (``AIRISK_DASHBOARD_PASSWORD``) or Streamlit's OIDC login
(``AIRISK_DASHBOARD_AUTH=oidc`` with an ``[auth]`` section in ``.streamlit/secrets.toml``).
dashboard/README.md says how."""

from __future__ import annotations

import hmac

import streamlit as st

_OK_KEY = "_airisk_password_ok"


def password_ok(given: str, expected: str) -> bool:
    """Constant-time comparison, so response times do not leak how much of a guess was right."""
    return hmac.compare_digest(given.encode(), expected.encode())


def require_password(expected: str) -> None:
    """Asks for the password until it is given once in this browser session; stops the page until then."""
    if st.session_state.get(_OK_KEY):
        return
    st.title("airisk")
    given = st.text_input("Password", type="password", key="_airisk_password")
    if given:
        if password_ok(given, expected):
            st.session_state[_OK_KEY] = True
            st.rerun()
        st.error("Wrong password.")
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
