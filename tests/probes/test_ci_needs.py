"""Tests that need something outside the repository skip without it, but fail under CI=true.

A plain `pytest.skip` let ~70 conformance tests (the recorded provider transcripts in
``../shared/``) and the kernel receive-stamp test vanish silently from a CI run.
"""

from __future__ import annotations

import pytest

import tests.probes.test_netbackend as netbackend
from tests.probes.shared_data import TRANSCRIPTS, require_dir


def test_missing_shared_data_fails_under_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and no provider transcripts at"):
        require_dir(tmp_path / "shared" / "transcripts", "provider transcripts")


def test_missing_shared_data_skips_the_module_elsewhere(tmp_path, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no provider transcripts at") as skipped:
        require_dir(tmp_path / "shared" / "transcripts", "provider transcripts")
    assert skipped.value.allow_module_level  # a module-level skip, as pytest requires there


def test_present_shared_data_is_used(monkeypatch):
    monkeypatch.setenv("CI", "true")
    if TRANSCRIPTS.is_dir():
        require_dir(TRANSCRIPTS, "provider transcripts")  # neither skips nor fails


def test_a_kernel_without_receive_stamps_fails_under_ci(monkeypatch):
    monkeypatch.setattr(netbackend, "_kernel_gives_rx_stamps", lambda: False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and the kernel returns no SO_TIMESTAMPNS"):
        netbackend.require_kernel_stamps()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        netbackend.require_kernel_stamps()
