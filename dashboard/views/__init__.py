"""The dashboard's pages: thin Streamlit scripts that `st.navigation` runs inside dashboard/app.py.

Not named ``pages/``: Streamlit treats a ``pages/`` folder beside the entry script as its older
automatic multipage layout, and `AppTest.switch_page` then runs the page file alone, without app.py
around it (no sidebar, no password gate, no demo banner), unlike a real server. A package only so
that the scripts ship with airisk.
"""
