"""The paper's baseline: 40 MFCCs per 10 ms frame, pooled to their mean and standard deviation (80-d).

No weights, no network. Long files arrive in chunks; their [mean, std] vectors are averaged by
duration, which keeps the mean exact and the spread approximately right.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from persona_cli.audio import SAMPLE_RATE
from persona_cli.encoders.base import Encoder
from persona_cli.encoders.mel import power_mel, slaney_mel_filterbank

N_FFT = 512  # 32 ms
HOP = 160  # 10 ms
N_MELS = 64
N_MFCC = 40
LOG_FLOOR = 1e-10  # keeps log finite on digital silence


def dct_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """Orthonormal DCT-II as a (n_out, n_in) matrix: the cepstrum of a log-mel frame."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return torch.from_numpy(basis.astype(np.float32))


class MFCCEncoder(Encoder):
    name = "mfcc"
    dim = 2 * N_MFCC

    def __init__(self) -> None:
        self.mel_filters = torch.from_numpy(slaney_mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS))
        self.dct = dct_matrix(N_MFCC, N_MELS)

    def mfcc(self, wave: np.ndarray) -> torch.Tensor:
        """(frames, 40) MFCCs of one 16 kHz wave."""
        mel = power_mel(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), self.mel_filters, HOP)
        log_mel = 10.0 * torch.log10(mel.clamp_min(LOG_FLOOR))
        return log_mel @ self.dct.T

    @torch.inference_mode()
    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        rows = []
        for wave in waves:
            coefficients = self.mfcc(wave)
            rows.append(torch.cat([coefficients.mean(0), coefficients.std(0, correction=0)]))
        return torch.stack(rows).numpy() if rows else np.zeros((0, self.dim), np.float32)


def load_mfcc(device: str = "cpu", source: str | None = None) -> MFCCEncoder:
    """MFCC features are cheap enough that the CPU always computes them; `device` is ignored."""
    return MFCCEncoder()
