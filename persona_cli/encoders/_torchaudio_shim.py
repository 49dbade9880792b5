"""Import torchaudio even where its compiled extension cannot load.

Why this exists: some torchaudio wheels ship `torchaudio/lib/_torchaudio.abi3.so` linked against
CUDA libraries. On a CPU-only machine with a CPU build of torch, `import torchaudio` then dies in
`torchaudio._extension` with `OSError: Could not load this library`, and SpeechBrain imports
torchaudio at module level, so SpeechBrain cannot be imported at all.

SpeechBrain's speaker encoders only use torchaudio's pure-Python parts (they compute their own
filterbanks with torch), so it is enough to replace `torchaudio._extension` with a stub that
reports "extension not available". torchaudio already supports that state (it is what a build
without the extension looks like); functions that truly need the extension (forced alignment)
raise a clear RuntimeError instead of crashing at import.

The real import is always tried first: where the extension loads, nothing is stubbed. The stub
is installed only when torchaudio is not yet imported and the real import failed with an error
from loading its compiled library.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
import types
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("persona")

_STUB_NAME = "torchaudio._extension"


def _fail_if_no_align(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator standing in for torchaudio's: the wrapped function raises instead of running."""

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{func.__module__}.{func.__name__} needs torchaudio's compiled extension, "
            "which could not be loaded on this machine"
        )

    return wrapped


def _extension_stub(reason: str) -> types.ModuleType:
    """A module with the names torchaudio's pure-Python code imports from `torchaudio._extension`."""
    stub = types.ModuleType(_STUB_NAME, f"persona stub: torchaudio extension unavailable ({reason})")
    vars(stub).update(
        _IS_TORCHAUDIO_EXT_AVAILABLE=False,
        _IS_ALIGN_AVAILABLE=False,
        fail_if_no_align=_fail_if_no_align,
        _load_lib=lambda lib: False,
        _check_cuda_version=lambda: None,
        __all__=["_check_cuda_version", "_IS_TORCHAUDIO_EXT_AVAILABLE"],
    )
    return stub


def _forget_partial_import() -> None:
    """Drop the torchaudio submodules a failed import left in sys.modules, so the retry starts clean."""
    for name in [name for name in sys.modules if name == "torchaudio" or name.startswith("torchaudio.")]:
        del sys.modules[name]


def import_torchaudio_without_extension() -> types.ModuleType:
    """Return the torchaudio module, stubbing its compiled extension only if that cannot load."""
    if "torchaudio" in sys.modules:
        return sys.modules["torchaudio"]
    try:
        return importlib.import_module("torchaudio")
    except ModuleNotFoundError:
        raise
    except (OSError, ImportError) as error:
        # the compiled extension failed to load (e.g. a CUDA-linked build beside a CPU torch)
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        logger.debug("torchaudio extension unavailable, using pure-Python parts only (%s)", reason)
        _forget_partial_import()
        sys.modules[_STUB_NAME] = _extension_stub(reason)
        return importlib.import_module("torchaudio")
