"""`airisk up` in demo mode, every dashboard page opened in headless Chromium (Debian's).

The whole main job runs as a user starts it: emulator, proxy, storefront, the real local model,
the monitor and the Streamlit dashboard. The local model is checked to be the real one (`up` falls
back to the emulator's stand-in when it cannot serve it, which would pass unseen otherwise). Each
page listed in the dashboard's navigation is opened; it must render without a Streamlit exception,
without a browser console error, and without Streamlit's developer toolbar ("Deploy").
Screenshots go to ``$AIRISK_SCREENSHOTS`` when set (the README's come from
``AIRISK_SCREENSHOTS=docs/screenshots``), else to the test's temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chaos.drill.runner import free_port
from monitor.localmodel import DEFAULT_ALIAS
from tests.conftest import need

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Browser-side noise that is not the page's: Chromium reporting blocked third-party telemetry.
_IGNORED = ("favicon", "webhooks.fivetran", "ERR_NAME_NOT_RESOLVED", "ERR_INTERNET_DISCONNECTED")


def _children(pid: int) -> list[str]:
    """Command lines of the live child processes of ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue
    return out


@pytest.fixture
def airisk_up(tmp_path):
    need(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python is not installed ([local])")
    port = free_port()
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "airisk.cli", "up", "--demo", "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "AIRISK_HOME": str(tmp_path / "home"),
                                                           "AIRISK_DATABASE_URL": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"airisk up exited: {(tmp_path / 'up.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200 and \
                        b"Ctrl-C stops everything" in (tmp_path / "up.log").read_bytes():
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"airisk up did not come up: {(tmp_path / 'up.log').read_text()[-2000:]}")
        _assert_the_real_local_model_answers(proc.pid, (tmp_path / "up.log").read_text())
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()[-2000:]  # Ctrl-C is a clean stop


def _assert_the_real_local_model_answers(pid: int, said: str) -> None:
    """The banner names llama.cpp (not "emulated"), a llama.cpp server is among up's children, and the URL
    the banner gives (the local target's) answers /v1/models with the bundled model's alias."""
    line = next((x for x in said.splitlines() if x.strip().startswith("local model")), "")
    found = re.search(r"by llama\.cpp at (http://\S+/v1)", line)
    assert found, f"airisk up did not serve the real local model: {line.strip() or said[-1500:]}"
    assert any("llama_cpp.server" in cmd for cmd in _children(pid)), _children(pid)
    models = httpx.get(f"{found.group(1)}/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == [DEFAULT_ALIAS]


def test_every_dashboard_page_renders_in_a_real_browser(airisk_up, tmp_path):
    need(CHROMIUM is not None, "Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("AIRISK_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.goto(airisk_up, wait_until="networkidle")
        page.wait_for_selector('[data-testid="stSidebarNav"] a', timeout=60_000)
        links = page.locator('[data-testid="stSidebarNav"] a')
        # an icon's name comes first in a link's text, the page title last
        titles = [text.strip().splitlines()[-1] for text in links.all_inner_texts()]
        assert len(titles) >= 6, titles  # overview, providers, features, drills, local vs outsourced, alerts
        for index, title in enumerate(titles):  # as a user does: through the navigation
            links.nth(index).click()
            page.wait_for_load_state("networkidle")
            page.wait_for_selector('[data-testid="stMain"] h1, [data-testid="stMain"] h2', timeout=60_000)
            page.wait_for_timeout(1500)  # charts draw after the first paint
            assert page.locator('[data-testid="stException"]').count() == 0, f"{title}: an exception is shown"
            # A viewer gets no developer toolbar (client.toolbarMode): no "Deploy", no rerun or settings menu.
            assert page.get_by_role("button", name="Deploy").count() == 0, f"{title}: a Deploy button is shown"
            assert page.locator('[data-testid="stAppDeployButton"]').count() == 0, title
            name = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        browser.close()
    real = [e for e in errors if not any(noise in e for noise in _IGNORED)]
    assert real == []
