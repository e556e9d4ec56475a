"""The airisk dashboard: ``streamlit run dashboard/app.py`` (or ``python -m dashboard``, bound to 127.0.0.1).

It reads the monitor's database (``AIRISK_DATABASE_URL``, else SQLite under ``AIRISK_HOME``) and
``AIRISK_CONFIG`` (else ./airisk.yaml) and never writes. Access: ``AIRISK_DASHBOARD_PASSWORD`` asks for a
shared password; ``AIRISK_DASHBOARD_AUTH=oidc`` requires Streamlit's OIDC login (`st.login`, configured
in ``.streamlit/secrets.toml``). ``AIRISK_DEMO=1`` marks every page as demo data. See dashboard/README.md.
"""

from __future__ import annotations

import streamlit as st

from dashboard import access, settings, ui

st.set_page_config(page_title="airisk", page_icon=":material/monitor_heart:", layout="wide")

if settings.oidc():
    access.require_login()
if (secret := settings.password()) is not None:
    access.require_password(secret)

if settings.demo():
    st.warning("**DEMO DATA**: these figures come from the emulator's demo incident script, not from real "
               "providers.", icon=":material/science:")

ui.sidebar()

page = st.navigation([
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("views/providers.py", title="Providers", icon=":material/cloud:"),
    st.Page("views/features.py", title="Features", icon=":material/account_tree:"),
    st.Page("views/drills.py", title="Drills", icon=":material/science:"),
    st.Page("views/local.py", title="Local vs outsourced", icon=":material/compare_arrows:"),
    st.Page("views/own.py", title="Can we own it?", icon=":material/balance:"),
    st.Page("views/alerts.py", title="Alerts", icon=":material/notifications:"),
])
page.run()
