"""Hugging Face speech encoders: `--encoder hf:ID_OR_DIR[@LAYER]` (wav2vec 2.0, HuBERT, WavLM, ...).

An optional family for users who have the weights (`pip install 'persona-cli[hf]'`): any model that
`transformers.AutoModel` loads as a raw-waveform speech encoder (one with a convolutional feature
encoder over 16 kHz samples, as wav2vec 2.0, HuBERT, WavLM and data2vec-audio have), together with
its `AutoFeatureExtractor`. The vector is the mean and the standard deviation, over a wave's
frames, of one hidden state (2 x hidden_size values), so the same leave-one-corpus-out protocol
(`persona train --test-corpus`) can rank these models against the bundled features.

Layer. `@LAYER` indexes the model's `hidden_states` (0: the convolutional features as the first
transformer layer sees them, N: the last layer's output; negative counts from the end). Without it,
the middle one (N // 2, e.g. 6 of 12): in layer-wise probes of self-supervised speech models,
speaker, emotion and other paralinguistic information peak in the middle layers, while the top
layers of a model that was only pre-trained specialise in its pre-training target and lose some of
it (Pasad et al. 2021, "Layer-wise analysis of a self-supervised speech representation model";
Pepino et al. 2021, "Emotion recognition from speech using wav2vec 2.0 embeddings"; WavLM's
SUPERB layer weights). It is a starting point, not something measured here: compare layers with
`@LAYER`. Transformer layers past the chosen state are not run (bar one: `_drop_layers_above`).

Weights. `ID_OR_DIR` is a local folder when such a folder exists (config.json,
preprocessor_config.json and the weights, as `hf download ID --local-dir DIR` writes them),
otherwise a Hub id, loaded from the Hugging Face cache first (`local_files_only=True`) and from
the network only when HF_HUB_OFFLINE is unset and one quick probe reaches the Hub
(encoders/_hub.py). `--encoder-source` overrides where the weights of a named model come from, so
a model trained on `hf:microsoft/wavlm-base-plus` runs on a machine that has a copy of it in a
folder. A failure is one ModelLoadingError line; so are checkpoint parameters that the model lacks
(they would be left random).

Batching. Each wave goes through the feature extractor on its own (its normalisation is per
utterance). Models whose extractor returns an attention mask (those with layer-normalised
convolutions: wav2vec2-large-lv60, HuBERT-large, WavLM-large) are batched with zero padding and
that mask: their convolutions and norms see each sample only in its neighbourhood, and the
transformer zeroes and masks padded frames, so a padded batch gives what one-at-a-time calls give. The others
(group-normalised first convolution: wav2vec2-base, HuBERT-base, WavLM-base(-plus)) normalise over
the whole time axis, padding included, so, as in encoders/speechbrain.py, only waves of equal length
share a forward call (the pipeline's chunks of long files do). The statistics are taken over each
wave's own frames (`_get_feat_extract_output_lengths`), never over padding.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from persona_cli.audio import SAMPLE_RATE
from persona_cli.cache import source_fingerprint
from persona_cli.encoders import parse_hf_name
from persona_cli.encoders._hub import describe, hub_offline, hub_reachable, looks_like_hub_id
from persona_cli.encoders.base import Encoder, equal_length_batches, padded_mono
from persona_cli.errors import ModelLoadingError, UsageError

log = logging.getLogger("persona")

#: waves per forward call; bounds memory, not results
MAX_BATCH = 16
#: shorter waves (the tail chunk of a long file) are zero-padded to this, each on its own before
#: batching: the convolutional feature encoder needs 400 samples for one frame, and the std a few frames
MIN_SAMPLES = SAMPLE_RATE // 10
#: parameters a checkpoint may lack without harm: only used when masking inputs in training
UNUSED_AT_INFERENCE = ("masked_spec_embed",)

# transformers' WavLM attention hands torch a boolean padding mask beside a float position bias, and
# torch warns about that on every padded batch; the result is right (tested to 1e-4 against one at
# a time). A process-wide filter for this one message, since warnings.catch_warnings is not thread-safe.
warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask and attn_mask", category=UserWarning)


class HFEncoder(Encoder):
    """A transformers speech model's hidden state `layer`, mean- and std-pooled over frames."""

    def __init__(self, name: str, model: Any, feature_extractor: Any, layer: int | None, weights: str, device: str):
        self.name = name
        self.feature_extractor = feature_extractor
        self.weights = weights
        n_states = int(model.config.num_hidden_layers) + 1
        if layer is None:
            layer = n_states // 2  # the middle layer (see the module docstring)
        if not -n_states <= layer < n_states:
            raise UsageError(f"{name}: no layer {layer}; this model has hidden states 0 to {n_states - 1}")
        self.layer = layer % n_states
        self.model = _drop_layers_above(model, self.layer).eval().to(device)
        self.device = torch.device(device)
        self.dim = 2 * int(model.config.hidden_size)
        # padding is exact only where the extractor says the model takes an attention mask and the
        # convolutions are layer-normalised (data2vec-audio's always are, and name no setting)
        self.pad_batches = bool(getattr(feature_extractor, "return_attention_mask", False)) and (
            getattr(model.config, "feat_extract_norm", "layer") == "layer"
        )

    def cache_identity(self) -> dict[str, str]:
        return {"weights": self.weights, "layer": str(self.layer)}

    def frames(self, samples: np.ndarray) -> np.ndarray:
        """Frames the model makes of waves of these lengths (in samples)."""
        lengths = self.model._get_feat_extract_output_lengths(torch.as_tensor(samples, dtype=torch.long))
        return np.asarray(lengths, dtype=np.int64)

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        arrays = [self._prepare(wave, index) for index, wave in enumerate(waves)]
        out = np.zeros((len(arrays), self.dim), np.float32)
        lengths = [len(a) for a in arrays]
        batches = _length_sorted_batches if self.pad_batches else equal_length_batches
        for indices in batches(lengths, MAX_BATCH):
            out[indices] = self._encode([arrays[i] for i in indices])
        return out

    def _prepare(self, wave: np.ndarray, index: int) -> np.ndarray:
        """One wave checked, padded when very short, and normalised as the model expects."""
        array = padded_mono(wave, index, MIN_SAMPLES)
        values = self.feature_extractor(array, sampling_rate=SAMPLE_RATE, return_tensors="np")["input_values"]
        return np.asarray(values, dtype=np.float32).reshape(-1)

    def _encode(self, arrays: list[np.ndarray]) -> np.ndarray:
        """Mean and std of the chosen hidden state over each wave's own frames, (len(arrays), dim)."""
        lengths = np.array([len(a) for a in arrays])
        batch = np.zeros((len(arrays), lengths.max()), np.float32)
        for row, array in zip(batch, arrays):
            row[: len(array)] = array
        inputs = {"input_values": torch.from_numpy(batch).to(self.device)}
        if self.pad_batches:
            mask = np.arange(batch.shape[1])[None, :] < lengths[:, None]
            inputs["attention_mask"] = torch.from_numpy(mask).long().to(self.device)
        with torch.inference_mode():
            hidden = self.model(**inputs, output_hidden_states=True).hidden_states[self.layer].float()
            frames = torch.from_numpy(self.frames(lengths)).to(self.device)
            valid = (torch.arange(hidden.shape[1], device=self.device)[None, :] < frames[:, None])[..., None]
            count = frames[:, None].clamp(min=1).float()
            mean = torch.where(valid, hidden, 0.0).sum(1) / count
            std = (torch.where(valid, hidden - mean[:, None], 0.0).square().sum(1) / count).sqrt()
            return torch.cat([mean, std], dim=1).cpu().numpy()

    # The mean and std over all the chunks' frames: each chunk weighs its frame count (its duration,
    # to the convolutions' edge), and its second moment is std² + mean².
    def pool_weights(self, chunk_seconds: np.ndarray) -> np.ndarray:
        samples = np.maximum(np.round(chunk_seconds * SAMPLE_RATE).astype(np.int64), MIN_SAMPLES)
        return self.frames(samples).astype(np.float64)

    def pool_terms(self, chunk_embeddings: np.ndarray) -> np.ndarray:
        mean, std = np.split(chunk_embeddings, 2, axis=1)
        return np.concatenate([mean, std**2 + mean**2], axis=1)

    def pool_finish(self, mean_terms: np.ndarray) -> np.ndarray:
        mean, second_moment = np.split(mean_terms, 2)
        return np.concatenate([mean, np.sqrt(np.maximum(second_moment - mean**2, 0.0))]).astype(np.float32)


def _length_sorted_batches(lengths: Sequence[int], max_batch: int) -> Iterator[list[int]]:
    """Indices sorted by length, in slices of at most `max_batch` (similar lengths: little padding)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for start in range(0, len(order), max_batch):
        yield order[start : start + max_batch]


def _drop_layers_above(model: Any, layer: int) -> Any:
    """Keep transformer layers 0 to `layer`. Hidden state `layer` is the input of transformer layer
    `layer`; without that layer it would become the encoder's final output, which pre-norm models
    (`do_stable_layer_norm`) pass through a closing layer norm first. So one layer more than needed
    runs, and the state means what it means in the whole model (tested against it)."""
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    if isinstance(layers, nn.ModuleList) and layer + 1 < len(layers):
        model.encoder.layers = layers[: layer + 1]
    return model


# ---------------------------------------------------------------------------------------------
# Loading


def load_hf(name: str, device: str = "cpu", source: str | None = None) -> HFEncoder:
    """The encoder `hf:ID_OR_DIR[@LAYER]`; `source` (a folder or Hub id) replaces ID_OR_DIR as the
    place the weights are read from, keeping the name."""
    parsed = parse_hf_name(name)
    if parsed is None:
        raise UsageError(f"not an hf: encoder name: {name!r}")
    where, layer = parsed
    where = str(source) if source else where
    _import_transformers()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    folder = Path(where).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        model, extractor = _load_pretrained(name, str(folder), local_files_only=True)
        weights = source_fingerprint(str(folder))
    elif looks_like_hub_id(where):
        model, extractor = _from_hub(name, where)
        weights = f"hub:{where}@{_hub_revision(where)}"
    else:
        raise _loading_error(name, where, "no such folder, and not a Hub id (owner/name)")
    return HFEncoder(name, model, extractor, layer, weights, device)


def _from_hub(name: str, hub_id: str) -> tuple[Any, Any]:
    """A Hub model from the Hugging Face cache, else downloaded if the Hub can be reached."""
    try:
        return _load_pretrained(name, hub_id, local_files_only=True)
    except ModelLoadingError as error:
        if not isinstance(error.__cause__, OSError):
            raise  # on disk, but not a usable speech encoder
        # transformers says "not in the cache" with an OSError (EnvironmentError)
        on_disk = "not in the Hugging Face cache"
        cached_error: BaseException = error
    if hub_offline():
        raise _loading_error(name, hub_id, f"{on_disk}, and HF_HUB_OFFLINE is set") from cached_error
    if not hub_reachable():
        raise _loading_error(name, hub_id, f"{on_disk}, and the Hugging Face Hub is unreachable") from cached_error
    log.info("downloading %s from the Hugging Face Hub", hub_id)
    return _load_pretrained(name, hub_id, local_files_only=False)


def _load_pretrained(name: str, source: str, *, local_files_only: bool) -> tuple[Any, Any]:
    """(model, feature extractor) from a folder or Hub id, checked to be a 16 kHz waveform encoder."""
    transformers = _import_transformers()
    try:
        with _quiet_transformers():
            extractor = transformers.AutoFeatureExtractor.from_pretrained(source, local_files_only=local_files_only)
            model, info = transformers.AutoModel.from_pretrained(
                source, local_files_only=local_files_only, output_loading_info=True
            )
    except Exception as error:  # noqa: BLE001 - any failure here means "these weights are unusable"
        raise _loading_error(name, source, describe(error)) from error
    missing = [key for key in info.get("missing_keys", ()) if key not in UNUSED_AT_INFERENCE]
    if missing:
        reason = f"the checkpoint lacks {len(missing)} of the model's parameters, e.g. {sorted(missing)[0]}"
        raise _loading_error(name, source, reason)
    for kind in ("unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            log.debug("%s: %d %s left unused, e.g. %s", name, len(info[kind]), kind, list(info[kind])[0])
    if not hasattr(model, "_get_feat_extract_output_lengths") or "input_values" not in getattr(
        extractor, "model_input_names", ()
    ):
        kind = f"{type(model).__name__} with {type(extractor).__name__}"
        raise _loading_error(name, source, f"{kind} is not a raw-waveform speech encoder like wav2vec 2.0")
    rate = getattr(extractor, "sampling_rate", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise _loading_error(name, source, f"the model expects {rate} Hz audio, and persona gives it {SAMPLE_RATE} Hz")
    return model, extractor


def _hub_revision(hub_id: str) -> str:
    """The commit of the cached copy (the snapshot folder config.json lies in), for the cache key."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(hub_id, "config.json")
    return Path(cached).parent.name if isinstance(cached, str) else "unknown"


@functools.cache
def _import_transformers() -> Any:
    if importlib.util.find_spec("transformers") is None:
        raise UsageError("the hf: encoders need transformers: pip install 'persona-cli[hf]'")
    if importlib.util.find_spec("torchaudio") is not None:
        # transformers imports torchaudio when it is installed; recent wheels' CUDA-linked extension
        # would stop that import on CPU-only machines (see _torchaudio_shim.py)
        from persona_cli.encoders._torchaudio_shim import import_torchaudio_without_extension

        import_torchaudio_without_extension()
    import transformers

    return transformers


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No progress bars or warnings while loading: problems that matter become our own errors."""
    from transformers.utils import logging as logging_utils

    verbosity, bars = logging_utils.get_verbosity(), logging_utils.is_progress_bar_enabled()
    logging_utils.set_verbosity_error()
    logging_utils.disable_progress_bar()
    try:
        yield
    finally:
        logging_utils.set_verbosity(verbosity)
        if bars:
            logging_utils.enable_progress_bar()


def _loading_error(name: str, source: str, reason: str) -> ModelLoadingError:
    return ModelLoadingError(
        f"{name} encoder: cannot load weights from {source!r} ({reason}). To provide them, download the "
        f"model on a machine with network (`hf download OWNER/NAME --local-dir DIR`: config.json, "
        f"preprocessor_config.json and the weights), then use `--encoder hf:DIR`, or keep the name and "
        f"add `--encoder-source DIR`."
    )


__all__ = ["HFEncoder", "load_hf"]
