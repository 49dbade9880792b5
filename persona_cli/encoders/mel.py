"""Mel spectrograms shared by the encoders, computed with torch (librosa's defaults, without librosa)."""

from __future__ import annotations

import numpy as np
import torch


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Mel filters on the Slaney scale with area normalisation (librosa's default), (n_mels, n_fft//2+1)."""

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        # linear below 1 kHz, logarithmic above (Slaney's Auditory Toolbox)
        hz = np.asarray(hz, dtype=np.float64)
        log_region = hz >= 1000.0
        mel = hz / (200.0 / 3)
        mel[log_region] = 15.0 + np.log(hz[log_region] / 1000.0) / (np.log(6.4) / 27.0)
        return mel

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        hz = mel * (200.0 / 3)
        log_region = mel >= 15.0
        hz[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_region] - 15.0))
        return hz

    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges_mel = np.linspace(hz_to_mel(np.array([0.0]))[0], hz_to_mel(np.array([sample_rate / 2]))[0], n_mels + 2)
    edges_hz = mel_to_hz(edges_mel)
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    filters = np.maximum(0, np.minimum(rising, falling))
    filters *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return filters.astype(np.float32)


def power_mel(wave: torch.Tensor, filters: torch.Tensor, hop: int) -> torch.Tensor:
    """(frames, n_mels) mel power spectrogram of a 1-D wave: centred frames, zero padding, periodic Hann
    window of n_fft = 2 * (filters.shape[1] - 1) samples (librosa.feature.melspectrogram's defaults)."""
    n_fft = 2 * (filters.shape[1] - 1)
    spectrum = torch.stft(
        wave,
        n_fft,
        hop,
        window=torch.hann_window(n_fft, periodic=True, device=wave.device),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    # |X|² as X times its conjugate: abs() would take a square root only for pow(2) to undo it
    return (filters @ (spectrum * spectrum.conj()).real).T
