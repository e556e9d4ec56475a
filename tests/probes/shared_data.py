"""Where the probe tests find what lives outside the repository (``../shared/``), and what to do without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import need

SHARED = Path(__file__).resolve().parents[3] / "shared"
TRANSCRIPTS = SHARED / "transcripts"


def require_dir(path: Path, what: str) -> None:
    """For a module that needs ``path``: skip the whole module where it is missing, but fail
    under CI=true, where it must run (`tests.conftest.need`, usable at module level)."""
    try:
        need(path.is_dir(), f"no {what} at {path} (a copy of shared/ belongs beside the clone)")
    except pytest.skip.Exception as skip:
        raise pytest.skip.Exception(skip.msg, allow_module_level=True) from None
