"""How a voice is used, not whose it is: pitch, loudness, voicing and spectral-tilt statistics.

Speaker embeddings are trained to ignore exactly what carries emotion (a speaker is the same person
angry or calm), so persona can append a small prosodic functional set to them (`ge2e+prosody`).
It is computed here, the frames with torch and the functionals with numpy, in the spirit of eGeMAPS
(Eyben et al. 2016) but far cheaper:

- frames of 40 ms every 20 ms (Hann window, 1024-point FFT);
- per frame: loudness (dB RMS), F0 from the autocorrelation normalised as Praat does (Boersma
  1993: divided by the window's, with an octave cost; 60-500 Hz, voiced when its peak is above
  VOICING_THRESHOLD and the frame is within 40 dB of the loudest), spectral
  centroid, spectral slope (regression of dB power on frequency, 0-5 kHz), alpha ratio (dB energy
  below vs above 1 kHz), Hammarberg index (dB peak 0-2 kHz minus peak 2-5 kHz), spectral flatness,
  zero-crossing rate;
- functionals over the file: pitch in semitones (voiced frames) mean, std, 20/50/80th percentiles,
  80-20 range and mean absolute change; loudness mean, std, percentiles and range over all frames,
  and mean rise and fall; each spectral descriptor's mean and std over voiced frames and mean over
  unvoiced ones; the voiced fraction, mean voiced and unvoiced segment lengths, and the rate of
  loudness peaks (a syllable-rate proxy).

Long files arrive in chunks; the chunks' vectors are averaged by duration (Encoder.pool), exact for
means and close for the spreads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from persona_cli.audio import SAMPLE_RATE
from persona_cli.encoders.base import Encoder

FRAME = 640  # 40 ms: two periods of the lowest pitch searched
HOP = 320  # 20 ms: half the frames of 10 ms, for half the cost (docs/speed.md, "Prosody frames")
N_FFT = 1024
PEAK_FRAMES = 2  # a loudness peak stands 3 dB above the frames this far away on either side
# frames analysed at once (5 s): bounds the memory a long chunk takes, and of 128, 250, 500 and
# 1,000 the fastest for a group of short clips (docs/speed.md, "Cheaper layer moments")
FRAMES_PER_BLOCK = 250
F0_MIN, F0_MAX = 60.0, 500.0
VOICING_THRESHOLD = 0.45  # normalised autocorrelation peak that counts as periodic (Praat's default)
# Praat's octave cost: each octave down the lag range costs this much autocorrelation, so a
# sub-harmonic only wins when it is clearly the stronger period
OCTAVE_COST = 0.01
SILENCE_DB = 40.0  # frames this far below the file's loudest are silence, never voiced
SEMITONE_REFERENCE_HZ = 27.5  # eGeMAPS's pitch reference (A0)
EPS = 1e-10

SPECTRAL = ("centroid_khz", "slope_db_per_khz", "alpha_ratio_db", "hammarberg_db", "flatness", "zcr")
#: per frame: loudness, F0, periodicity and the spectral descriptors
MEASURES = 3 + len(SPECTRAL)
FEATURE_NAMES = (
    [f"pitch_{s}" for s in ("mean", "std", "p20", "p50", "p80", "range", "abs_change")]
    + [f"loudness_{s}" for s in ("mean", "std", "p20", "p50", "p80", "range", "rise", "fall")]
    + [f"{name}_{s}" for name in SPECTRAL for s in ("voiced_mean", "voiced_std", "unvoiced_mean")]
    + ["voiced_fraction", "voiced_segment_s", "unvoiced_segment_s", "loudness_peaks_per_s"]
)


class ProsodyEncoder(Encoder):
    name = "prosody"
    dim = len(FEATURE_NAMES)
    # 1: autocorrelation not divided by the window's, no octave cost; 2: frames every 10 ms
    revision = "3"

    def __init__(self) -> None:
        self.window = torch.hann_window(FRAME, periodic=True)
        frequencies = torch.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)
        self.khz = frequencies / 1000
        # the bands as slices (views, not copies) of each frame's bins
        bin_1k, bin_2k, bin_5k = (int(torch.count_nonzero(frequencies < hz)) for hz in (1000, 2000, 5000))
        self.below_1k, self.above_1k = slice(0, bin_1k), slice(bin_1k, bin_5k)
        self.band_0_2k, self.band_2_5k = slice(0, bin_2k), slice(bin_2k, bin_5k)
        self.slope_band = slice(0, bin_5k)
        self.min_lag, self.max_lag = int(SAMPLE_RATE / F0_MAX), int(SAMPLE_RATE / F0_MIN)
        window_power = torch.fft.rfft(self.window, N_FFT).abs().pow(2)
        window_autocorrelation = torch.fft.irfft(window_power, N_FFT)[: self.max_lag + 1]
        self.window_autocorrelation = window_autocorrelation / window_autocorrelation[0]
        lags = torch.arange(self.min_lag, self.max_lag + 1, dtype=torch.float32)
        self.octave_bonus = -OCTAVE_COST * torch.log2(lags / self.max_lag)  # 0 at the lowest F0 searched

    @torch.inference_mode()
    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(waves), self.dim), np.float32)
        if not waves:
            return out
        frames_per_file = [self._frames(wave) for wave in waves]
        file_starts = np.cumsum([len(frames) for frames in frames_per_file])[:-1]
        for i, measures in enumerate(np.split(self._measure(frames_per_file), file_starts, axis=1)):
            out[i] = self.functionals(measures)
        return out

    @torch.inference_mode()
    def frame_measures(self, wave: np.ndarray) -> np.ndarray:
        """(MEASURES, n) the measures of each 40 ms frame of `wave`, one every 20 ms from its first
        sample: what `functionals` of any run of them makes the vector of that stretch from."""
        return self._measure([self._frames(wave)])

    def functionals(self, measures: np.ndarray) -> np.ndarray:
        """One file's vector from its frames' (MEASURES, n) measures."""
        loudness, f0, periodicity, *spectral = measures
        return self._functionals(loudness, f0, periodicity, np.stack(spectral, 1))

    @staticmethod
    def _frames(wave: np.ndarray) -> torch.Tensor:
        samples = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        if samples.numel() < FRAME:
            samples = torch.nn.functional.pad(samples, (0, FRAME - samples.numel()))
        return samples.unfold(0, FRAME, HOP)  # (n, FRAME), a view

    def _measure(self, frames_per_file: list[torch.Tensor]) -> np.ndarray:
        """(MEASURES, total frames): the measures of every file's frames in turn (see
        _frame_measures).

        The frames of consecutive files share one analysis of up to FRAMES_PER_BLOCK frames: a
        short clip alone would pay the per-call cost of some thirty tensor operations for a few
        hundred frames. The block bounds the memory a long chunk takes."""
        pieces = [piece for frames in frames_per_file for piece in frames.split(FRAMES_PER_BLOCK)]
        blocks: list[torch.Tensor] = []
        block: list[torch.Tensor] = []
        size = 0
        for piece in pieces:
            if size + len(piece) > FRAMES_PER_BLOCK and block:
                blocks.append(self._frame_measures(torch.cat(block)))
                block, size = [], 0
            block.append(piece)
            size += len(piece)
        blocks.append(self._frame_measures(torch.cat(block)))
        return torch.cat(blocks, 1).numpy()

    def _frame_measures(self, frames: torch.Tensor) -> torch.Tensor:
        """(MEASURES, n): loudness (dB), F0 (Hz), periodicity and the spectral descriptors of each frame."""
        loudness = 10 * torch.log10(frames.pow(2).mean(1) + EPS)
        spectrum = torch.fft.rfft(frames * self.window, N_FFT)
        power = (spectrum * spectrum.conj()).real + EPS  # |X|², in fewer passes than real² + imag²
        f0, periodicity = self._pitch(power)
        return torch.cat([torch.stack([loudness, f0, periodicity]), self._spectral(power, frames)])

    def _pitch(self, power: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """F0 (Hz) and the normalised autocorrelation at that period, per frame (Boersma 1993).

        The frame is windowed, so its autocorrelation fades with lag by the window's own
        autocorrelation; without dividing that out, half the true period (an octave too high)
        often beat the period itself on low voices. The division and Praat's octave cost make that
        rare (docs/measurements.md, "Prosody pitch").
        """
        autocorrelation = torch.fft.irfft(power, N_FFT)[:, : self.max_lag + 1]
        normalised = autocorrelation / autocorrelation[:, :1] / self.window_autocorrelation
        candidates = normalised[:, self.min_lag :]
        lag = (candidates + self.octave_bonus).argmax(1)
        peak = candidates.gather(1, lag[:, None])[:, 0]
        return SAMPLE_RATE / (lag + self.min_lag).float(), peak

    def _spectral(self, power: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """(len(SPECTRAL), n) per-frame spectral descriptors."""
        total = power.sum(1)
        centroid = (power @ self.khz) / total
        log_power = torch.log(power)  # once, for the slope's dB and the flatness's geometric mean
        db = (10 / math.log(10)) * log_power[:, self.slope_band]
        x = self.khz[self.slope_band] - self.khz[self.slope_band].mean()
        slope = (db - db.mean(1, keepdim=True)) @ x / x.pow(2).sum()
        alpha = 10 * torch.log10(power[:, self.below_1k].sum(1) / power[:, self.above_1k].sum(1))
        hammarberg = 10 * torch.log10(power[:, self.band_0_2k].amax(1) / power[:, self.band_2_5k].amax(1))
        flatness = torch.exp(log_power.mean(1)) / (total / power.shape[1])
        signs = torch.signbit(frames)
        zcr = (signs[:, 1:] != signs[:, :-1]).sum(1) / (FRAME - 1)  # the share of sign changes
        return torch.stack([centroid, slope, alpha, hammarberg, flatness, zcr])

    @classmethod
    def _functionals(
        cls, loudness: np.ndarray, f0: np.ndarray, periodicity: np.ndarray, spectral: np.ndarray
    ) -> np.ndarray:
        """One file's 37 functionals from its frames' measures (numpy: a file's few hundred frames
        cost less there than in torch's per-operation dispatch)."""
        voiced = (periodicity > VOICING_THRESHOLD) & (loudness > loudness.max() - SILENCE_DB)
        return np.concatenate(
            [
                cls._pitch_functionals(f0[voiced]),
                cls._loudness_functionals(loudness),
                cls._spectral_functionals(spectral, voiced),
                cls._rhythm(voiced, loudness),
            ]
        )

    @staticmethod
    def _pitch_functionals(f0: np.ndarray) -> np.ndarray:
        if f0.size < 2:
            return np.zeros(7)
        semitones = 12 * np.log2(f0 / np.float32(SEMITONE_REFERENCE_HZ))
        p20, p50, p80 = np.quantile(semitones, [0.2, 0.5, 0.8])
        change = np.abs(np.diff(semitones)).mean()
        return np.array([semitones.mean(), semitones.std(ddof=1), p20, p50, p80, p80 - p20, change])

    @staticmethod
    def _loudness_functionals(loudness: np.ndarray) -> np.ndarray:
        p20, p50, p80 = np.quantile(loudness, [0.2, 0.5, 0.8])
        step = np.diff(loudness) if loudness.size > 1 else np.zeros(1, loudness.dtype)
        rise, fall = np.maximum(step, 0).mean(), np.maximum(-step, 0).mean()
        return np.array([loudness.mean(), loudness.std(), p20, p50, p80, p80 - p20, rise, fall])

    @staticmethod
    def _spectral_functionals(spectral: np.ndarray, voiced: np.ndarray) -> np.ndarray:
        """Each descriptor's mean and std over voiced frames and mean over unvoiced ones (0 where
        there are none), all descriptors at once."""
        on, off = spectral[voiced], spectral[~voiced]
        zeros = np.zeros(spectral.shape[1], spectral.dtype)
        on_mean, on_std = (on.mean(0), on.std(0)) if len(on) else (zeros, zeros)
        off_mean = off.mean(0) if len(off) else zeros
        return np.stack([on_mean, on_std, off_mean], 1).ravel()

    @staticmethod
    def _rhythm(voiced: np.ndarray, loudness: np.ndarray) -> np.ndarray:
        seconds = voiced.size * HOP / SAMPLE_RATE
        changes = np.flatnonzero(np.diff(voiced.astype(np.int8))) + 1
        bounds = np.concatenate([[0], changes, [voiced.size]])
        lengths = np.diff(bounds) * HOP / SAMPLE_RATE
        kinds = voiced[bounds[:-1]]
        voiced_s = lengths[kinds].mean() if kinds.any() else 0.0
        unvoiced_s = lengths[~kinds].mean() if (~kinds).any() else 0.0
        # loudness peaks: local maxima at least 3 dB above the frames 40 ms either side
        k = PEAK_FRAMES
        padded = np.pad(loudness, k, mode="edge")
        around = np.maximum(padded[: -2 * k], padded[2 * k :])
        previous, following = padded[k - 1 : -k - 1], padded[k + 1 : len(padded) - k + 1]
        peaks = (loudness >= previous) & (loudness >= following) & (loudness > around + 3) & voiced
        return np.array([voiced.mean(), voiced_s, unvoiced_s, np.count_nonzero(peaks) / max(seconds, 1e-3)])


def median_pitch_hz(vectors: np.ndarray) -> np.ndarray:
    """The median F0 of each file, in Hz, from (n, dim) prosody vectors (27.5 Hz for a file with no voiced frames)."""
    return SEMITONE_REFERENCE_HZ * 2 ** (vectors[:, FEATURE_NAMES.index("pitch_p50")] / 12)


def load_prosody(device: str = "cpu", source: str | None = None) -> ProsodyEncoder:
    """No weights; the CPU always computes these (`device` is ignored)."""
    return ProsodyEncoder()


__all__ = ["FEATURE_NAMES", "ProsodyEncoder", "load_prosody", "median_pitch_hz"]
