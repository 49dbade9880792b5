"""Feature fusion: several encoders' vectors side by side (`ge2e+prosody`), one network on top.

The speaker embedding carries who is speaking (and so gender and age); the prosodic set carries how
they are speaking (emotion). Each part keeps its own pooling of a long file's chunks (GE2E
re-normalises its mean), and the model's input standardisation puts the parts on one scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from persona_cli.encoders.base import Encoder, Pooling
from persona_cli.speech import speech_seconds


class FusedEncoder(Encoder):
    def __init__(self, parts: Sequence[Encoder]):
        self.parts = list(parts)
        self.name = "+".join(part.name for part in self.parts)
        self.dim = sum(part.dim for part in self.parts)
        self.revision = "+".join(part.revision for part in self.parts)
        self._bounds = np.cumsum([0] + [part.dim for part in self.parts])
        self.measures_speech = any(part.measures_speech for part in self.parts)

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([part.embed(waves) for part in self.parts], axis=1).astype(np.float32)

    def embed_with_speech(self, waves: Sequence[np.ndarray]) -> tuple[np.ndarray, list[float]]:
        """The parts' vectors side by side, and the speech measured by the first part that measures
        it anyway (or here, when none does)."""
        vectors, speech = [], None
        for part in self.parts:
            if speech is None and part.measures_speech:
                part_vectors, speech = part.embed_with_speech(waves)
                vectors.append(part_vectors)
            else:
                vectors.append(part.embed(waves))
        if speech is None:
            speech = [speech_seconds(np.asarray(wave, dtype=np.float32)) for wave in waves]
        return np.concatenate(vectors, axis=1).astype(np.float32), speech

    def cache_identity(self) -> dict[str, str]:
        """The parts' identities by position, leaving out parts that have none."""
        return {
            f"{i}:{key}": value for i, part in enumerate(self.parts) for key, value in part.cache_identity().items()
        }

    def pooling(self) -> Pooling:
        """Each part pools its own columns its own way (GE2E re-normalises its mean, an `hf:` part
        weighs chunks by frames), so the pool_* hooks inherited from Encoder are not used here."""
        return _FusedPooling(self)


class _FusedPooling(Pooling):
    """The parts' Poolings side by side; the sums live in them."""

    def __init__(self, fused: FusedEncoder):
        super().__init__(fused)
        self.parts = [part.pooling() for part in fused.parts]
        self.bounds = fused._bounds

    def add(self, chunk_embeddings: np.ndarray, chunk_seconds: np.ndarray) -> None:
        for part, start, end in zip(self.parts, self.bounds[:-1], self.bounds[1:]):
            part.add(np.asarray(chunk_embeddings)[:, start:end], chunk_seconds)

    def result(self) -> np.ndarray:
        return np.concatenate([part.result() for part in self.parts]).astype(np.float32)


__all__ = ["FusedEncoder"]
