"""Keeping a long run's memory flat: glibc's malloc, told not to let freed audio buffers pile up.

glibc serves an allocation above its mmap threshold with a fresh mapping that goes back to the OS
when freed, and smaller ones from its heaps, which fragment. The threshold starts at 128 KB but
rises to the size of every large block freed, up to 32 MB, so after the first big tensor is freed
the LSTM buffers and long waves (a different size for every batch) all come from the heaps, and the
worker threads' heaps fragment as files pass through. So persona predict:

- fixes the mmap threshold at 4 MB (lower thresholds slowed the x-vector encoder, whose conv
  activations are a few MB: every call mapped and faulted in fresh pages);
- raises the trim threshold to 256 MB (fixing the mmap threshold also pins glibc's trim threshold
  at 128 KB, and trimming the heap top after nearly every free cost measurable speed), and instead
- hands the heaps' free pages back once per group of files (malloc_trim).

The effect on peak memory is in docs/measurements.md ("malloc tuning"). Elsewhere (musl, macOS,
Windows) these are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
            return libc
    except OSError:
        pass
    return None


_LIBC = _glibc()


def keep_large_buffers_out_of_the_heap() -> bool:
    """Fix glibc's mmap and trim thresholds; False where that is not possible."""
    return bool(
        _LIBC is not None
        and _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and _LIBC.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def return_free_memory() -> None:
    """Give the heaps' free pages back to the OS (between groups of files)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


__all__ = ["keep_large_buffers_out_of_the_heap", "return_free_memory"]
