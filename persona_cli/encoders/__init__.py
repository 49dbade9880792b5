"""Registry of speaker-embedding backends, imported lazily so `ge2e` never pulls in SpeechBrain."""

from __future__ import annotations

import importlib

from persona_cli.encoders.base import Encoder
from persona_cli.errors import UsageError

#: name -> (module, factory function); each factory takes (device, source) keyword arguments
_REGISTRY: dict[str, tuple[str, str]] = {
    "ge2e": ("persona_cli.encoders.ge2e", "load_ge2e"),
    "ge2e-layers": ("persona_cli.encoders.ge2e", "load_ge2e_layers"),
    "mfcc": ("persona_cli.encoders.mfcc", "load_mfcc"),
    "xvector": ("persona_cli.encoders.speechbrain", "load_xvector"),
    "ecapa": ("persona_cli.encoders.speechbrain", "load_ecapa"),
    "prosody": ("persona_cli.encoders.prosody", "load_prosody"),
    "egemaps": ("persona_cli.encoders.egemaps", "load_egemaps"),
}

#: fused encoders offered by name; any "A+B" of registered names also works
FUSED_NAMES = ("ge2e-layers+prosody+mfcc", "ge2e+prosody+mfcc", "ge2e+prosody", "ge2e+egemaps")
ENCODER_NAMES = tuple(_REGISTRY) + FUSED_NAMES
# the speaker embedding with its upper LSTM layers' frame statistics, 37 prosodic functionals and
# MFCC statistics: the best RAVDESS emotion of the encoders tried, well above ge2e alone and above
# the same set without the layer statistics, and still fast on 2 CPU cores (docs/measurements.md,
# "Default encoder"; README, "Training and evaluation" and "Speed and scale")
DEFAULT_ENCODER = "ge2e-layers+prosody+mfcc"


def is_encoder_name(name: str) -> bool:
    """A registered encoder, or a fusion ("A+B+...") of registered encoders."""
    return all(part in _REGISTRY for part in name.split("+"))


#: encoders with a float16 path (`half=True`), checked against float32 in tests/test_encoders.py
HALF_PRECISION = ("ge2e", "ge2e-layers")


def load_encoder(name: str, device: str = "cpu", source: str | None = None, half: bool = False) -> Encoder:
    """Build the encoder called `name` on `device`; `source` overrides where its weights come from
    (for a fused "A+B", A's weights); `half` runs the network in float16 (HALF_PRECISION encoders only)."""
    if "+" in name:
        from persona_cli.encoders.fused import FusedEncoder

        first, *others = name.split("+")
        return FusedEncoder(
            [load_encoder(first, device, source, half), *(load_encoder(part, device) for part in others)]
        )
    try:
        module_name, factory_name = _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODER_NAMES)}") from None
    if half and name not in HALF_PRECISION:
        raise UsageError(f"--half is available for {', '.join(HALF_PRECISION)} only, not {name}")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(device=device, source=source, **({"half": True} if half else {}))


__all__ = ["DEFAULT_ENCODER", "ENCODER_NAMES", "HALF_PRECISION", "Encoder", "is_encoder_name", "load_encoder"]
