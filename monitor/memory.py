"""Handing memory the monitor freed back to the operating system.

A monitor runs for months, and its RSS is what an operator watches it by. CPython frees objects
into glibc's malloc, which keeps freed chunks in its arenas for reuse; after a burst (a wave of
failing probes, a large status page, an alert storm) the process keeps the peak for good, and the
worker threads' arenas fragment, so RSS creeps up although the live heap does not
(docs/BENCHMARKS.md, "Soak"). glibc's ``malloc_trim(0)`` returns every free page of every arena
(``MADV_DONTNEED``), not only the top of the main heap (glibc >= 2.8; man 3 malloc_trim).
Elsewhere (musl, macOS, Windows) there is no such call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache

log = logging.getLogger(__name__)


@cache
def _malloc_trim():  # the C function, or None where the C library has none
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_freed_memory() -> bool:
    """Asks the C library to return freed memory to the OS; True if it released any.
    Costs about a millisecond on a monitor's heap; call it every minute or so, off the event loop."""
    trim = _malloc_trim()
    if trim is None:
        return False
    return bool(trim(0))


def can_release() -> bool:
    """Whether this platform's C library can hand freed memory back (glibc)."""
    return _malloc_trim() is not None
