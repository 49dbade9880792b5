"""persona: emotion, gender and age from recorded speech, for whole folders of audio.

    import persona_cli as persona

    predictor = persona.Predictor()
    for prediction in predictor.predict_files(["interview.wav"]):
        print(prediction.emotion, prediction.gender, prediction.age)

The names below are imported on first use, so `import persona_cli` stays cheap until a model is
needed (torch loads then).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Predictor": "persona_cli.predictor",
    "Embedder": "persona_cli.predictor",
    "Prediction": "persona_cli.results",
    "Embedding": "persona_cli.results",
    "train": "persona_cli.experiments",
    "evaluate": "persona_cli.experiments",
    "PersonaError": "persona_cli.errors",
    "UsageError": "persona_cli.errors",
    "AudioLoadError": "persona_cli.errors",
    "ModelLoadingError": "persona_cli.errors",
}

__all__ = [
    "__version__",
    "Predictor",
    "Embedder",
    "Prediction",
    "Embedding",
    "train",
    "evaluate",
    "PersonaError",
    "UsageError",
    "AudioLoadError",
    "ModelLoadingError",
]

if TYPE_CHECKING:
    from persona_cli.errors import AudioLoadError, ModelLoadingError, PersonaError, UsageError
    from persona_cli.experiments import evaluate, train
    from persona_cli.predictor import Embedder, Predictor
    from persona_cli.results import Embedding, Prediction


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'persona_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
