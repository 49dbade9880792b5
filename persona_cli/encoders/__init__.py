"""Registry of speaker-embedding backends, imported lazily so `ge2e` never pulls in SpeechBrain.

Besides the registered names there is one open family, `hf:ID_OR_DIR[@LAYER]`: a Hugging Face
speech model (wav2vec 2.0, HuBERT, WavLM) from a Hub id or a local folder (encoders/huggingface.py).
Names combine with "+" ("ge2e+hf:microsoft/wavlm-base-plus@6"). Hub ids never contain "+"; a
folder path may, so a "+" inside an `hf:` part is kept in the path unless what follows it is a
registered name or another `hf:` part (a folder named like "x+mfcc" cannot be fused: rename it).
A trailing "@N" is always read as the layer, so a folder name cannot end in "@" and digits.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

from persona_cli.encoders._hub import looks_like_hub_id
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
    "vfs": ("persona_cli.encoders.vfs", "load_vfs"),
}

#: the packages an encoder needs beyond persona's own dependencies, and the extra that installs them
#: (`hf` stands for every `hf:` model); checked before any work, so a missing extra is one line
_EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "xvector": (("speechbrain", "huggingface_hub"), "speechbrain"),
    "ecapa": (("speechbrain", "huggingface_hub"), "speechbrain"),
    "vfs": (("speechbrain",), "vfs"),
    "egemaps": (("opensmile",), "egemaps"),
    "hf": (("transformers",), "hf"),
}

#: fused encoders offered by name; any "A+B" of registered names (and `hf:` models) also works
FUSED_NAMES = ("ge2e-layers+prosody", "ge2e-layers+prosody+mfcc", "ge2e+prosody+mfcc", "ge2e+prosody", "ge2e+egemaps")
ENCODER_NAMES = tuple(_REGISTRY) + FUSED_NAMES
# the speaker embedding with its upper LSTM layers' frame statistics and 37 prosodic functionals.
# Without the MFCC statistics it once fused: their average spectral envelope is mostly microphone
# and room, so they helped within a corpus and hurt on corpora left out of training
# (docs/measurements.md, "Default encoder"; docs/accuracy.md, leave-one-corpus-out)
DEFAULT_ENCODER = "ge2e-layers+prosody"

#: the open family of Hugging Face speech models (encoders/huggingface.py)
HF_PREFIX = "hf:"
HF_SYNTAX = "hf:ID_OR_DIR[@LAYER]"
_HF_LAYER = re.compile(r"@(-?\d+)\Z")
#: the end of an "unknown encoder" message
CHOICES = f"choose one of: {', '.join(ENCODER_NAMES)}, or {HF_SYNTAX} (a Hugging Face speech model)"


def parse_hf_name(name: str) -> tuple[str, int | None] | None:
    """("ID_OR_DIR", layer or None) for an `hf:ID_OR_DIR[@LAYER]` name; None for any other name."""
    if not name.startswith(HF_PREFIX):
        return None
    rest = name[len(HF_PREFIX) :]
    match = _HF_LAYER.search(rest)
    source = rest[: match.start()] if match else rest
    if not source.strip():
        return None
    return source, int(match[1]) if match else None


def split_encoder_name(name: str) -> list[str]:
    """The parts of a fused name ("A+B+..."), keeping a "+" that belongs to an `hf:` folder path."""
    parts: list[str] = []
    for token in name.split("+"):
        if parts and parts[-1].startswith(HF_PREFIX) and token not in _REGISTRY and not token.startswith(HF_PREFIX):
            parts[-1] += "+" + token
        else:
            parts.append(token)
    return parts


def is_encoder_name(name: str) -> bool:
    """A registered encoder, an `hf:` model, or a fusion ("A+B+...") of those."""
    return all(part in _REGISTRY or parse_hf_name(part) is not None for part in split_encoder_name(name))


def encoder_slug(name: str) -> str:
    """`name` made safe as part of a file or folder name: registered names are already; an `hf:` part
    becomes "hf-" + the Hub id (owner--name) or the folder's name, and "-L<layer>" when one is given."""
    parts = []
    for part in split_encoder_name(name):
        parsed = parse_hf_name(part)
        if parsed is not None:
            source, layer = parsed
            source = source.rstrip("/\\")
            if looks_like_hub_id(source):
                short = source.replace("/", "--")
            else:
                short = Path(source).name or Path(source).expanduser().resolve().name or "model"
            part = f"hf-{short}" + ("" if layer is None else f"-L{layer}")
        parts.append(part)
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", "+".join(parts))[:150]


def check_installed(name: str) -> None:
    """Refuse (UsageError) an encoder, or a fusion with one, whose optional packages are missing."""
    for part in split_encoder_name(name):
        needs, extra = _EXTRAS.get("hf" if parse_hf_name(part) is not None else part, ((), ""))
        for module in needs:
            if not _importable(module):
                raise UsageError(f"--encoder {part} needs {module}: pip install 'persona-cli[{extra}]'")


def _importable(module: str) -> bool:
    """Whether `import module` can work, without importing it (SpeechBrain takes seconds to import)."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None: blocked on purpose, and by the tests
    return importlib.util.find_spec(module) is not None


#: encoders with a float16 path (`half=True`), checked against float32 in tests/test_encoders.py
HALF_PRECISION = ("ge2e", "ge2e-layers")


def load_encoder(name: str, device: str = "cpu", source: str | None = None, half: bool = False) -> Encoder:
    """Build the encoder called `name` on `device`; `source` overrides where its weights come from
    (for a fused "A+B", A's weights); `half` runs the network in float16 (HALF_PRECISION encoders only)."""
    check_installed(name)
    parts = split_encoder_name(name)
    if len(parts) > 1:
        from persona_cli.encoders.fused import FusedEncoder

        first, *others = parts
        return FusedEncoder(
            [load_encoder(first, device, source, half), *(load_encoder(part, device) for part in others)]
        )
    hf_model = parse_hf_name(name) is not None
    if not hf_model and name not in _REGISTRY:
        raise UsageError(f"unknown encoder {name!r}; {CHOICES}")
    if half and name not in HALF_PRECISION:
        raise UsageError(f"--half is available for {', '.join(HALF_PRECISION)} only, not {name}")
    if hf_model:
        from persona_cli.encoders.huggingface import load_hf

        return load_hf(name, device=device, source=source)
    module_name, factory_name = _REGISTRY[name]
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(device=device, source=source, **({"half": True} if half else {}))


__all__ = [
    "CHOICES",
    "DEFAULT_ENCODER",
    "ENCODER_NAMES",
    "HALF_PRECISION",
    "HF_SYNTAX",
    "Encoder",
    "check_installed",
    "encoder_slug",
    "is_encoder_name",
    "load_encoder",
    "parse_hf_name",
    "split_encoder_name",
]
