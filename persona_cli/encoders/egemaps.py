"""eGeMAPSv02 functionals (Eyben et al. 2016, 88 values per file) through the `opensmile` package.

The reference prosodic/spectral set for affect; opensmile ships its binaries on PyPI and runs
offline, but far slower than GE2E (docs/measurements.md, "eGeMAPS"), so it is an option
(`ge2e+egemaps`), not the default. Install: pip install 'persona-cli[egemaps]'.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from persona_cli.audio import SAMPLE_RATE
from persona_cli.encoders.base import Encoder
from persona_cli.errors import ModelLoadingError

EGEMAPS_DIM = 88


class EgemapsEncoder(Encoder):
    name = "egemaps"
    dim = EGEMAPS_DIM

    def __init__(self) -> None:
        try:
            import opensmile
        except ImportError:
            raise ModelLoadingError("the egemaps features need opensmile: pip install 'persona-cli[egemaps]'") from None
        self.smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
        )

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(waves), self.dim), np.float32)
        for i, wave in enumerate(waves):
            out[i] = self.smile.process_signal(np.asarray(wave, dtype=np.float32), SAMPLE_RATE).to_numpy()[0]
        return out


def load_egemaps(device: str = "cpu", source: str | None = None) -> EgemapsEncoder:
    return EgemapsEncoder()


__all__ = ["EgemapsEncoder", "load_egemaps"]
