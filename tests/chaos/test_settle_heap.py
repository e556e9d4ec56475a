"""`chaos.run.settle_heap`: what a long-running proxy or monitor holds from startup is set aside
from garbage collection, so a full collection no longer pauses it for startup's objects."""

from __future__ import annotations

import gc

from chaos.run import settle_heap


def test_after_settling_a_full_collection_scans_only_what_came_later():
    gc.collect()
    before = len(gc.get_objects())
    try:
        settle_heap()
        frozen = gc.get_freeze_count()
        assert frozen >= before * 0.9  # (gc.collect may free a few first)
        assert len(gc.get_objects()) < before / 10  # what a full collection now walks
        kept = [[i] for i in range(1000)]  # what comes later is collected as ever
        assert len(gc.get_objects()) >= 1000 and all(gc.is_tracked(x) for x in kept)
    finally:
        gc.unfreeze()  # the rest of this test session's process as it was
    assert gc.get_freeze_count() == 0
