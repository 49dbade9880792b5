"""GE2E speaker encoder (Wan et al. 2018) with the weights that ship inside the `resemblyzer` package.

This reimplements resemblyzer's `preprocess_wav` + `VoiceEncoder.embed_utterance` so that many files
are embedded in one forward call: every file is cut into 1.6 s "partials" (160 mel frames), the
partials of a whole batch of files go through the LSTM together, and each file's embedding is the
L2-normalised mean of its partials. Because every partial has the same length, batching needs no
padding; with resemblyzer's slicing it gives the same numbers as its one-file-at-a-time call
(tested to 1e-4). `ge2e-layers` adds frame statistics of the LSTM's upper two layers from the same
forward pass.

The slicing is persona's own (revision 2): resemblyzer starts a partial every 0.77 s, so every frame
goes through the LSTM about twice, and the LSTM is half of `persona predict`'s time. Revision 2 uses
the fewest partials that cover every frame, spread evenly over the wave, which on Common Voice clips
is 25 % fewer LSTM steps; the measurements that kept it are in docs/speed.md, "GE2E partials".

On a CPU with bfloat16 units (AVX512-BF16 or AMX) the LSTM runs in bfloat16 by default: its matrix
products take bfloat16 inputs and add in float32, 1.36x faster for the whole `ge2e-layers+prosody`
encoder, with embeddings within 0.995 cosine of float32 and the bundled model's predictions nearly
unchanged (docs/speed.md, "bfloat16 on the CPU"). The price is reproducibility to about 1e-3
instead of 1e-7: a file's vector then depends slightly on which files share its batch.
`persona train` (and so every cross-validated figure) embeds in float32 wherever it runs;
`PERSONA_CPU_BFLOAT16=0` runs float32 everywhere.

Only the weights file is taken from resemblyzer; importing the package itself would pull in librosa
(and numba's slow start-up) for a mel spectrogram that torch computes as well.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from persona_cli.audio import SAMPLE_RATE
from persona_cli.encoders.base import Encoder
from persona_cli.encoders.mel import power_mel, slaney_mel_filterbank
from persona_cli.errors import ModelLoadingError
from persona_cli.speech import VAD_WINDOW, normalize_volume, speech_seconds, voiced_windows

# resemblyzer's hyper-parameters (resemblyzer/hparams.py); the weights were trained with these.
N_FFT = 400  # 25 ms window
HOP = 160  # 10 ms step
N_MELS = 40
PARTIAL_FRAMES = 160  # one partial utterance = 1.6 s
# resemblyzer's slicing (revision 1, and the tests' reference): a new partial every ~0.77 s, and a
# last one dropped when it is mostly padding
PARTIALS_PER_SECOND = 1.3
MIN_LAST_PARTIAL_COVERAGE = 0.75
VAD_MAX_SILENCE = 6  # silent windows kept on each side of speech (the detector itself: speech.py)

#: partials per LSTM call. It bounds the LSTM's transient memory, which grows with the call size
#: and sets how far RSS swings when parallel workers' calls coincide; small calls cost no speed
#: (docs/measurements.md, "GE2E").
MAX_PARTIALS_PER_FORWARD = 32
GE2E_DIM = 256  # the embedding's and each LSTM layer's width
LAYER_STATS_DIM = 4 * GE2E_DIM  # ge2e-layers: mean and std of the middle and the top layer


def resemblyzer_weights_path() -> Path:
    """Locate `pretrained.pt` inside the installed resemblyzer package without importing it."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadingError("the ge2e encoder needs the `resemblyzer` package: pip install resemblyzer")
    path = Path(next(iter(spec.submodule_search_locations)), "pretrained.pt")
    if not path.is_file():
        raise ModelLoadingError(f"resemblyzer is installed but its weights are missing: {path}")
    return path


def trim_long_silences(wave: np.ndarray) -> np.ndarray:
    """Cut pauses longer than ~0.2 s, keeping speech and a short margin around it (webrtcvad, mode 3)."""
    return _trim(wave, voiced_windows(wave))


def _trim(wave: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    wave = wave[: voiced.size * VAD_WINDOW]
    if voiced.size == 0:
        return wave
    # widen each voiced window by VAD_MAX_SILENCE//2 windows on either side
    # (full convolution sliced back to size: mode="same" would return 7 values for fewer windows)
    margin = VAD_MAX_SILENCE // 2
    dilated = np.convolve(voiced, np.ones(VAD_MAX_SILENCE + 1))[margin : margin + voiced.size] > 0
    return wave[np.repeat(dilated, VAD_WINDOW)]


def partial_starts(n_samples: int) -> list[int]:
    """First mel frame of each 1.6 s partial of a wave of `n_samples`: the fewest partials that cover
    every frame, evenly spaced from the first frame to the last, so neighbours overlap by less than
    one partial and no frame is left out (a wave under 1.6 s is one partial, padded)."""
    n_frames = int(np.ceil(n_samples / HOP))  # the frames centred inside the wave
    if n_frames <= PARTIAL_FRAMES:
        return [0]
    count = int(np.ceil((n_frames - PARTIAL_FRAMES) / PARTIAL_FRAMES)) + 1
    return np.linspace(0, n_frames - PARTIAL_FRAMES, count).round().astype(int).tolist()


def resemblyzer_partial_starts(n_samples: int) -> list[int]:
    """First mel frame of each 1.6 s partial as resemblyzer's `embed_utterance` slices a wave of
    `n_samples` (revision 1): one every 1/1.3 s, the last dropped when under 75 % covered."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    frame_step = int(np.round(SAMPLE_RATE / PARTIALS_PER_SECOND / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + frame_step + 1), frame_step))
    last_start_sample = starts[-1] * HOP
    coverage = (n_samples - last_start_sample) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_LAST_PARTIAL_COVERAGE and len(starts) > 1:
        starts.pop()
    return starts


BFLOAT16_SWITCH = "PERSONA_CPU_BFLOAT16"  # "0": float32 on every CPU


def cpu_has_bfloat16_units() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX). Elsewhere oneDNN
    emulates bfloat16, slower than float32."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe is not None and probe() for probe in probes)


def cpu_runs_bfloat16() -> bool:
    """Whether the GE2E LSTM runs in bfloat16 here by default: the CPU has the units and the user
    has not switched them off."""
    return os.environ.get(BFLOAT16_SWITCH, "").strip() != "0" and cpu_has_bfloat16_units()


def float32_lstm(encoder: Encoder) -> Encoder:
    """`encoder`, with every GE2E network in it (a fused encoder's parts too) run in float32: for
    training and cross-validation, whose figures must not depend on the CPU they ran on."""
    for part in getattr(encoder, "parts", [encoder]):
        if isinstance(part, GE2EEncoder):
            part.bfloat16 = False
    return encoder


class SpeakerLSTM(nn.Module):
    """resemblyzer's network: 3-layer LSTM over 40 mel bands, last hidden state -> 256-d, ReLU, L2 norm.

    The LSTM is held as its lower two layers and its top one so that the middle layer's outputs can be
    read on the way (`ge2e-layers`); running them in turn computes exactly what one 3-layer LSTM does.
    """

    def __init__(self, hidden: int = 256, embedding: int = 256):
        super().__init__()
        self.lower = nn.LSTM(N_MELS, hidden, 2, batch_first=True)
        self.upper = nn.LSTM(hidden, hidden, 1, batch_first=True)
        self.linear = nn.Linear(hidden, embedding)

    def forward(self, mels: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """For a (batch, frames, 40) mel tensor: the embeddings, and the middle and top layers' outputs
        at every frame, each (batch, frames, 256)."""
        middle, _ = self.lower(mels)
        top, (hidden, _) = self.upper(middle)
        embeds = torch.relu(self.linear(hidden[-1]))
        return embeds / torch.linalg.vector_norm(embeds, dim=1, keepdim=True), (middle, top)

    def load_resemblyzer_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load resemblyzer's `lstm.*_l0/_l1/_l2` and `linear.*` weights into the split LSTM."""
        renamed = {}
        for key, value in state.items():
            if key.startswith("lstm.") and key.endswith("_l2"):
                renamed["upper." + key.removeprefix("lstm.").removesuffix("_l2") + "_l0"] = value
            elif key.startswith("lstm."):
                renamed["lower." + key.removeprefix("lstm.")] = value
            elif key.startswith("linear."):
                renamed[key] = value
        self.load_state_dict(renamed)


class GE2EEncoder(Encoder):
    name = "ge2e"
    dim = GE2E_DIM
    revision = "2"  # 1: resemblyzer's overlapping partials (resemblyzer_partial_starts)

    def __init__(
        self,
        device: str = "cpu",
        weights: Path | None = None,
        half: bool = False,
        resemblyzer_slicing: bool = False,
        bfloat16: bool | None = None,
    ):
        self.device = torch.device(device)
        # float16 weights and activations: for GPUs, whose tensor cores run them several times faster
        # (a CPU runs them slower). Mel partials are computed in float32 and cast on the way in.
        self.dtype = torch.float16 if half else torch.float32
        # bfloat16 matrix products on a CPU that has them (None: where cpu_runs_bfloat16); the weights
        # stay float32, autocast rounds each product's inputs
        if bfloat16 is None:
            bfloat16 = cpu_runs_bfloat16()
        self.bfloat16 = bool(bfloat16) and self.device.type == "cpu" and not half
        #: None: resemblyzer's own weights
        self.weights = weights
        checkpoint = torch.load(weights or resemblyzer_weights_path(), map_location="cpu", weights_only=True)
        self.network = SpeakerLSTM()
        self.network.load_resemblyzer_state(checkpoint["model_state"])
        self.network.eval().to(self.device, self.dtype)
        self.mel_filters = torch.from_numpy(slaney_mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS))
        # resemblyzer's own partials, for checking everything else against its embed_utterance
        self.partial_starts = resemblyzer_partial_starts if resemblyzer_slicing else partial_starts
        if resemblyzer_slicing:
            self.revision = "1"

    def cache_identity(self) -> dict[str, str]:
        return {"precision": "bfloat16"} if self.bfloat16 else {}

    def forward(self, partials: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The network on a batch of partials already on the device: float32 embeddings, and the
        layer outputs in the precision the network ran in (cast them when their moments are taken)."""
        precision = torch.autocast("cpu", dtype=torch.bfloat16) if self.bfloat16 else contextlib.nullcontext()
        with precision:
            embeds, layer_outputs = self.network(partials)
        return embeds.float(), layer_outputs

    #: ge2e-layers: also the upper LSTM layers' statistics
    keep_layers = False
    #: the silence trimming runs webrtcvad on every wave, so its mask also measures the speech
    measures_speech = True

    def partials(self, wave: np.ndarray) -> torch.Tensor:
        """One file's partial utterances as a (n_partials, 160, 40) mel-power tensor."""
        return self._partials_and_speech(wave)[0]

    def _partials_and_speech(self, wave: np.ndarray) -> tuple[torch.Tensor, float]:
        wave = normalize_volume(wave)
        voiced = voiced_windows(wave)
        speech = speech_seconds(wave, voiced)
        wave = _trim(wave, voiced)
        starts = self.partial_starts(len(wave))
        needed = (starts[-1] + PARTIAL_FRAMES) * HOP
        if needed >= len(wave):
            wave = np.pad(wave, (0, needed - len(wave)))
        mel = power_mel(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), self.mel_filters, HOP)
        return torch.stack([mel[s : s + PARTIAL_FRAMES] for s in starts]), speech

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        return self.embed_with_speech(waves)[0]

    def embed_with_speech(self, waves: Sequence[np.ndarray]) -> tuple[np.ndarray, list[float]]:
        embeddings, layer_stats, speech = self.run(waves, keep_layers=self.keep_layers)
        vectors = embeddings if layer_stats is None else np.concatenate([embeddings, layer_stats], axis=1)
        return vectors, speech

    @torch.inference_mode()
    def run(self, waves: Sequence[np.ndarray], keep_layers: bool) -> tuple[np.ndarray, np.ndarray | None, list[float]]:
        """Each file's embedding (the L2-normalised mean of its partials' embeddings); with
        `keep_layers`, the mean and std of the middle and top LSTM layers' outputs over all its partials'
        frames ([middle mean | top mean | middle std | top std], 1024-d); and its seconds of speech."""
        if not waves:
            no_stats = np.zeros((0, LAYER_STATS_DIM), np.float32) if keep_layers else None
            return np.zeros((0, GE2E_DIM), np.float32), no_stats, []
        per_file, speech = zip(*(self._partials_and_speech(w) for w in waves))
        counts = [p.shape[0] for p in per_file]
        all_partials = torch.cat(per_file)
        on_gpu = self.device.type == "cuda"
        if on_gpu:  # page-locked memory lets the copies below run asynchronously (not measured: no GPU here)
            all_partials = all_partials.pin_memory()
        partial_embeds, partial_moments = [], []
        for i in range(0, all_partials.shape[0], MAX_PARTIALS_PER_FORWARD):
            batch = all_partials[i : i + MAX_PARTIALS_PER_FORWARD].to(self.device, self.dtype, non_blocking=on_gpu)
            embeds, layer_outputs = self.forward(batch)
            partial_embeds.append(embeds.cpu())
            if keep_layers:
                partial_moments.append(layer_moments(layer_outputs).cpu())
        means = torch.stack([group.mean(0) for group in torch.cat(partial_embeds).split(counts)])
        embeddings = (means / torch.linalg.vector_norm(means, dim=1, keepdim=True)).numpy().astype(np.float32)
        if not keep_layers:
            return embeddings, None, list(speech)
        # every partial has the same number of frames, so a file's moments are its partials' mean
        moments = torch.stack([group.double().mean(0) for group in torch.cat(partial_moments).split(counts)])
        return embeddings, moments_to_mean_std(moments.numpy()), list(speech)

    def pool_finish(self, mean_terms: np.ndarray) -> np.ndarray:
        """The embeddings' duration-weighted mean, re-normalised, as each one is."""
        return (mean_terms / np.linalg.norm(mean_terms)).astype(np.float32)


def layer_moments(layer_outputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(batch, 1024) first and second moments of the middle and top layers over each partial's
    frames: [middle mean | top mean | middle mean square | top mean square], in float32."""
    # layer by layer: joining the two time-major layer outputs first was the slow part
    # (docs/speed.md, "Cheaper layer moments")
    outputs = [layer.float() for layer in layer_outputs]
    return torch.cat([layer.mean(1) for layer in outputs] + [layer.square().mean(1) for layer in outputs], dim=1)


def moments_to_mean_std(moments: np.ndarray) -> np.ndarray:
    """[mean | mean of squares] -> [mean | std], per row."""
    mean, mean_square = np.split(moments, 2, axis=-1)
    return np.concatenate([mean, np.sqrt(np.maximum(mean_square - mean**2, 0.0))], axis=-1).astype(np.float32)


class GE2ELayersEncoder(GE2EEncoder):
    """`ge2e-layers`: the GE2E speaker embedding, then the mean and std over every speech frame of the
    middle and top LSTM layers' outputs (256 + 1024 = 1280-d), all from the same forward pass.

    GE2E is trained to tell speakers apart, so its embedding keeps who is speaking and drops how; the
    layers below it still carry how. In a linear probe of RAVDESS emotion beside `ge2e+prosody+mfcc`,
    the middle layer's statistics added far more than the first's or the top's; in the network,
    middle and top together beat the middle alone on gender, age and cross-corpus emotion
    (docs/measurements.md, "GE2E layer statistics"; docs/encoders.md).
    """

    name = "ge2e-layers"
    dim = GE2E_DIM + LAYER_STATS_DIM
    keep_layers = True

    # Duration-weighted, like one long file: the embeddings' renormalised mean, and the layers' mean
    # and std over all the chunks' frames (each chunk's second moment is std² + mean²).
    def pool_terms(self, chunk_embeddings: np.ndarray) -> np.ndarray:
        mean, std = np.split(chunk_embeddings[:, GE2E_DIM:], 2, axis=1)
        return np.concatenate([chunk_embeddings[:, :GE2E_DIM], mean, std**2 + mean**2], axis=1)

    def pool_finish(self, mean_terms: np.ndarray) -> np.ndarray:
        embedding = super().pool_finish(mean_terms[:GE2E_DIM])
        return np.concatenate([embedding, moments_to_mean_std(mean_terms[GE2E_DIM:])]).astype(np.float32)


def load_ge2e(device: str = "cpu", source: str | None = None, half: bool = False) -> GE2EEncoder:
    """The speaker embedding alone; `source` may name another resemblyzer-format `pretrained.pt`."""
    return GE2EEncoder(device=device, weights=Path(source) if source else None, half=half)


def load_ge2e_layers(device: str = "cpu", source: str | None = None, half: bool = False) -> GE2ELayersEncoder:
    """`ge2e-layers`: the speaker embedding and its upper layers' statistics, from `ge2e`'s weights."""
    return GE2ELayersEncoder(device=device, weights=Path(source) if source else None, half=half)
