"""The MFCC baseline: 40 MFCCs and their deltas per 10 ms frame, over the frames that carry sound,
pooled to their mean and standard deviation (160-d).

No weights, no network. Three choices depart from the plainest MFCC mean+std: 64 ms frames of 128
mel bands (librosa's band count); dropping frames more than 40 dB below the file's loudest, since
the second of silence around each acted sentence otherwise dominates the spread; and deltas, how
fast the spectrum moves. Chosen by speaker-grouped 5-fold CV on ../shared/data over seeds 0/1/2 among
ten variants for RAVDESS emotion (docs/measurements.md, "MFCC baseline").

Long files arrive in chunks; their vectors are averaged by duration, which keeps the mean exact and the
spread approximately right.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from persona_cli.audio import SAMPLE_RATE
from persona_cli.encoders.base import Encoder
from persona_cli.encoders.mel import power_mel, slaney_mel_filterbank

N_FFT = 1024  # 64 ms
HOP = 160  # 10 ms
N_MELS = 128
N_MFCC = 40
LOG_FLOOR = 1e-10  # keeps log finite on digital silence
SILENCE_BELOW_PEAK_DB = 40.0  # frames this far below the loudest frame are left out of the statistics
MIN_SOUNDING_FRAMES = 10  # fewer than this (near-silent files): keep every frame


def dct_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """Orthonormal DCT-II as a (n_out, n_in) matrix: the cepstrum of a log-mel frame."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return torch.from_numpy(basis.astype(np.float32))


def deltas(frames: torch.Tensor) -> torch.Tensor:
    """First-order deltas over time, (frames[t+1] - frames[t-1]) / 2, with the edge frames repeated."""
    padded = torch.cat([frames[:1], frames, frames[-1:]])
    return (padded[2:] - padded[:-2]) / 2


def sounding_frames(mel: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the frames within SILENCE_BELOW_PEAK_DB of the loudest one."""
    energy_db = 10.0 * torch.log10(mel.sum(1).clamp_min(LOG_FLOOR))
    keep = energy_db > energy_db.max() - SILENCE_BELOW_PEAK_DB
    if int(keep.sum()) < MIN_SOUNDING_FRAMES:
        return torch.ones_like(keep)
    return keep


class MFCCEncoder(Encoder):
    name = "mfcc"
    dim = 4 * N_MFCC  # mean and std of the MFCCs and of their deltas
    revision = "2"  # 1: 64 mel bands, every frame, no deltas (80-d)

    def __init__(self) -> None:
        self.mel_filters = torch.from_numpy(slaney_mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS))
        self.dct = dct_matrix(N_MFCC, N_MELS)

    def mel(self, wave: np.ndarray) -> torch.Tensor:
        """(frames, 128) mel power spectrogram of one 16 kHz wave."""
        return power_mel(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), self.mel_filters, HOP)

    def mfcc(self, mel: torch.Tensor) -> torch.Tensor:
        """(frames, 40) MFCCs of a mel power spectrogram."""
        return 10.0 * torch.log10(mel.clamp_min(LOG_FLOOR)) @ self.dct.T

    @torch.inference_mode()
    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        rows = []
        for wave in waves:
            mel = self.mel(wave)
            coefficients = self.mfcc(mel)
            keep = sounding_frames(mel)
            # deltas over the whole sequence, so a dropped pause does not read as a jump
            parts = (coefficients[keep], deltas(coefficients)[keep])
            rows.append(torch.cat([stat for part in parts for stat in (part.mean(0), part.std(0, correction=0))]))
        return torch.stack(rows).numpy() if rows else np.zeros((0, self.dim), np.float32)


def load_mfcc(device: str = "cpu", source: str | None = None) -> MFCCEncoder:
    """MFCC features are cheap enough that the CPU always computes them; `device` is ignored."""
    return MFCCEncoder()
