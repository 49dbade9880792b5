"""Registry of speaker-embedding backends, imported lazily so `ge2e` never pulls in SpeechBrain."""

from __future__ import annotations

import importlib

from persona_cli.encoders.base import Encoder
from persona_cli.errors import UsageError

#: name -> (module, factory function); each factory takes (device, source) keyword arguments
_REGISTRY: dict[str, tuple[str, str]] = {
    "ge2e": ("persona_cli.encoders.ge2e", "load_ge2e"),
    "mfcc": ("persona_cli.encoders.mfcc", "load_mfcc"),
    "xvector": ("persona_cli.encoders.speechbrain", "load_xvector"),
    "ecapa": ("persona_cli.encoders.speechbrain", "load_ecapa"),
}

ENCODER_NAMES = tuple(_REGISTRY)
DEFAULT_ENCODER = "ge2e"


def load_encoder(name: str, device: str = "cpu", source: str | None = None) -> Encoder:
    """Build the encoder called `name` on `device`; `source` overrides where its weights come from."""
    try:
        module_name, factory_name = _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODER_NAMES)}") from None
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(device=device, source=source)


__all__ = ["DEFAULT_ENCODER", "ENCODER_NAMES", "Encoder", "load_encoder"]
