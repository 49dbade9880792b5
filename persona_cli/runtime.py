"""Runtime choices: which device, how many cores, how many torch threads, how memory is handed back.

The command line and the Python API both go through `configure()`, so a notebook gets the same
thread layout and memory settings as `persona predict`.
"""

from __future__ import annotations

import gc
import os
import re

import torch

from persona_cli.errors import UsageError
from persona_cli.memory import keep_large_buffers_out_of_the_heap


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and `taskset` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """One worker per core: each decodes and embeds on one torch thread."""
    return usable_cores()


def compute_threads(workers: int) -> int:
    """torch's intra-op threads per worker: the cores shared out between the workers (all of them
    when there are no workers). More threads than cores never pays: torch's OpenMP threads wait for
    each other at every op, so one preempted thread stalls all the others beside a busy decoder."""
    return max(1, usable_cores() // max(workers, 1))


def configure(workers: int | None) -> int:
    """Settle the number of workers (None: one per core), give torch its share of the cores and keep
    freed audio buffers out of malloc's heaps; returns the number of workers."""
    workers = default_workers() if workers is None else workers
    torch.set_num_threads(compute_threads(workers))
    keep_large_buffers_out_of_the_heap()
    return workers


def collect_garbage_again() -> None:
    """Where the `persona` command started with the cyclic garbage collector off (`__main__.py`), turn
    it back on now that the imports and the model are loaded: one collection, then what loading made
    is frozen out of every later one (`gc.freeze`), since it all lives until the process ends. A
    notebook's collector is on, and stays as it is."""
    if not gc.isenabled():
        gc.collect()  # once, for what loading left behind: frozen, it would stay
        gc.freeze()
        gc.enable()


def resolve_device(device: str) -> str:
    """'auto' becomes cuda when a GPU is usable, else cpu; an unusable explicit choice is a usage error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not re.fullmatch(r"cuda(:\d+)?", device):
            raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, not {device!r}")
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: no CUDA GPU is available here (use --device cpu)")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) present")
        return device
    if device != "cpu":
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, not {device!r}")
    return device


__all__ = ["compute_threads", "configure", "default_workers", "resolve_device", "usable_cores"]
