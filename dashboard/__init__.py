"""The airisk dashboard: a Streamlit app that reads the monitor's store (never writes).

`dashboard.queries` (what each page shows, as DataFrames and dataclasses) and `dashboard.charts`
(plotly figures of them) are plain functions, tested without Streamlit; `dashboard/views/*.py` (the pages) are
thin scripts over them, `dashboard/app.py` the entry (`st.navigation`), `dashboard.serve` starts it
on 127.0.0.1. dashboard/README.md says how to run and protect it.
"""
