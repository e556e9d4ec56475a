"""The tests that read ``../shared/`` skip on a machine without it, but fail under CI=true, where a
missing folder would otherwise pass the suite with those tests silently not run."""

from __future__ import annotations

import asyncio

import pytest

import tests.conftest as shared
from tests.monitor import test_risk, test_statuspoll


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_shared_data_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path, ci):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(shared, "SHARED", tmp_path / "absent")
    monkeypatch.setattr(test_statuspoll, "SHARED", tmp_path / "absent")
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match="not here"):
        test_risk.test_sanity_against_the_vendors_own_outage_record()
    with pytest.raises(outcome, match="no transcript at"):
        asyncio.run(test_statuspoll.test_the_statuspage_documented_example_as_published(tmp_path))
