"""Ctrl-C held back while compiled libraries load, and answered as soon as they have.

Python raises KeyboardInterrupt wherever the main thread happens to be when SIGINT arrives. Inside
`import torch` that can be Python code called from C++ that cannot pass an exception on: the process
aborts ("terminate called after throwing an instance of 'pybind11::error_already_set'", SIGABRT and
a core dump), or a class being built turns it into a RuntimeError traceback. Holding the signal
for the second or two the import takes, then raising it, gives the usual one-line message and 130.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: the signals `persona` answers as an interrupt (cli.main maps SIGTERM to one)
_INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def held_while_loading() -> Iterator[None]:
    """Inside: an interrupt is noted, not raised. On the way out: KeyboardInterrupt if one came.

    Signal handlers can only be set from the main thread; elsewhere (a notebook's worker thread)
    this holds nothing, and the thread never receives signals anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def note(signum: int, _frame: object) -> None:
        received.append(signum)

    previous = {signum: signal.signal(signum, note) for signum in _INTERRUPTS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
    if received:
        raise KeyboardInterrupt
