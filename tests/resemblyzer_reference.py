"""`ge2e-layers` written against resemblyzer alone, one file per call: the reference its test checks
persona's batched encoder against, and the naive loop benchmarks/throughput.py times."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def resemblyzer_layers_embedder() -> Callable[[np.ndarray], np.ndarray]:
    """A function of a 16 kHz wave: resemblyzer's preprocessing, partial slicing (embed_utterance's
    defaults) and mel spectrogram; its 3-layer LSTM for the embedding and the top layer's outputs,
    and a 2-layer LSTM holding its first two layers' weights for the middle layer's outputs."""
    from resemblyzer import VoiceEncoder, preprocess_wav, wav_to_mel_spectrogram

    voice_encoder = VoiceEncoder("cpu", verbose=False)
    lower = torch.nn.LSTM(40, 256, 2, batch_first=True)
    lower.load_state_dict({k: v for k, v in voice_encoder.lstm.state_dict().items() if not k.endswith("_l2")})

    def embed(wave: np.ndarray) -> np.ndarray:
        wave = preprocess_wav(wave, source_sr=16_000)
        # a partial every 1/1.3 s, a last one kept if 75 % covered, as embed_utterance does
        wave_slices, mel_slices = voice_encoder.compute_partial_slices(len(wave), 1.3, 0.75)
        mel = wav_to_mel_spectrogram(np.pad(wave, (0, max(0, wave_slices[-1].stop - len(wave)))))
        partials = torch.from_numpy(np.stack([mel[s] for s in mel_slices]))
        with torch.inference_mode():
            top, (hidden, _) = voice_encoder.lstm(partials)
            embeds = torch.relu(voice_encoder.linear(hidden[-1]))
            embedding = (embeds / torch.linalg.vector_norm(embeds, dim=1, keepdim=True)).mean(0)
            frames = torch.cat([lower(partials)[0], top], dim=2).reshape(-1, 512).double()
        return np.concatenate(
            [
                (embedding / torch.linalg.vector_norm(embedding)).numpy(),
                frames.mean(0).numpy(),
                frames.std(0, correction=0).numpy(),
            ]
        ).astype(np.float32)

    return embed
