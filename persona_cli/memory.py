"""Keeping a long run's memory flat: glibc's malloc, told not to let freed audio buffers pile up.

glibc serves an allocation above its mmap threshold with a fresh mapping that goes back to the OS
when freed, and smaller ones from its heaps, which fragment. The threshold starts at 128 KB but
rises to the size of every large block freed, up to 32 MB, so after the first big tensor is freed
the decoded waves, mel spectrograms and LSTM buffers (0.1-30 MB, a different size for every file)
all come from the heaps, and the heaps of the worker threads fragment as files pass through.
Two remedies, both measured on 5,000 Common Voice clips with two workers (resident memory between
files, then peak RSS):

- fixing the threshold at 512 KB keeps those buffers in their own mappings: 406-452 -> 361-370 MB,
  peak 574 -> 446 MB (with 64 partials per LSTM call, see encoders/ge2e.py);
- handing the heaps' free pages back after each group of files (malloc_trim): 315-335 MB, peak
  435 MB, throughput unchanged within run-to-run noise.

Elsewhere (musl, macOS, Windows) both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3  # mallopt parameter number, from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 512 * 1024


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
    """Fix glibc's mmap threshold at 512 KB; False where that is not possible."""
    return bool(_LIBC is not None and _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def return_free_memory() -> None:
    """Give the heaps' free pages back to the OS (between groups of files)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


__all__ = ["keep_large_buffers_out_of_the_heap", "return_free_memory"]
