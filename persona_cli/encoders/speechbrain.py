"""SpeechBrain x-vector (512-d) and ECAPA-TDNN (192-d) speaker encoders.

Weights come from a local model folder (hyperparams.yaml + *.ckpt, as in the Hugging Face repos
`speechbrain/spkrec-xvect-voxceleb` and `speechbrain/spkrec-ecapa-voxceleb`) or from the Hub.
A local folder always wins; SpeechBrain gets an explicit `savedir` in persona's cache, never the
working directory. Hub loading first looks only at what is already on disk (the savedir and the
Hugging Face cache), and goes to the network only when `HF_HUB_OFFLINE` is unset and the Hub
answers a quick probe, so an offline machine fails at once instead of sitting through
huggingface_hub's retries (docs/measurements.md, "SpeechBrain encoders"). Every failure (missing folder or file, bad yaml, a checkpoint that does not fit the
model, which SpeechBrain itself would only warn about) is one ModelLoadingError line saying how to
provide the weights.

Batching. `embed` runs waves of EQUAL length together and each distinct length on its own; it
never zero-pads. Padding was measured to change embeddings far beyond the 1e-4 that batched and
one-at-a-time results must agree to (docs/measurements.md, "SpeechBrain encoders"). Fbank and the
sentence mean normalisation can be made padding-exact (Fbank pads with zeros; the relative
lengths decide which frames the mean covers), but the TDNN / Res2Net convolutions pad each layer
by *reflecting* the sequence at the tensor's end: alone, a wave's last frames see a reflection of
itself; in a padded batch they see padding, and the pooled statistics shift. That cannot be undone
from the outside, so waves are grouped by exact length instead. The pipeline cuts long files into
equal chunks, so those still batch; short whole files mostly run one by one, which on CPU costs
little (a convolution over hundreds of frames is already a large matrix product).

Waves shorter than 0.1 s (the tail chunk of a long file) are zero-padded to 0.1 s, each on its
own before batching, because the convolutions need a few frames.

Determinism. SpeechBrain's `StatisticsPooling` (used by the x-vector) adds fresh random noise in
[eps, 9*eps] (eps = 1e-5) to the pooled mean on every call, even in eval mode, which alone makes
two identical calls disagree (docs/measurements.md). We replace that noise, on our instance only, by
its expected value 5*eps, so results are reproducible and batch-independent.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from persona_cli.audio import SAMPLE_RATE
from persona_cli.cache import cache_dir
from persona_cli.encoders._hub import (
    describe as _describe,
    hub_offline as _hub_offline,
    hub_reachable as _hub_reachable,
    looks_like_hub_id,
)
from persona_cli.encoders._torchaudio_shim import import_torchaudio_without_extension
from persona_cli.encoders.base import Encoder, embed_in_equal_length_batches
from persona_cli.errors import ModelLoadingError

log = logging.getLogger("persona")

XVECTOR_SOURCE = "speechbrain/spkrec-xvect-voxceleb"
ECAPA_SOURCE = "speechbrain/spkrec-ecapa-voxceleb"
HPARAMS_FILE = "hyperparams.yaml"

#: waves per forward call (within one group of equal lengths); bounds memory, not results
MAX_BATCH = 32
#: shorter waves (e.g. the tail chunk of a long file) are zero-padded to this: the convolutions'
#: reflection padding needs several 10 ms frames, and the pooled std needs more than one
MIN_SAMPLES = SAMPLE_RATE // 10
_DEFINES_PRETRAINED_PATH = re.compile(r"^pretrained_path\s*:", re.MULTILINE)


class SpeechBrainEncoder(Encoder):
    """A SpeechBrain `EncoderClassifier` behind persona's `Encoder` interface."""

    def __init__(self, classifier: Any, name: str, max_batch: int = MAX_BATCH):
        self.name = name
        self.classifier = classifier
        self.max_batch = max_batch
        _make_pooling_deterministic(classifier)
        # random-weight test models may have any width, so ask the model rather than assume
        probe = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.01
        self.dim = int(self._encode(torch.from_numpy(probe)[None]).shape[1])

    def _encode(self, batch: torch.Tensor) -> np.ndarray:
        """(n, samples) waves of one length -> (n, dim) float32; no padding, so relative lengths are 1."""
        with torch.inference_mode():
            embeddings = self.classifier.encode_batch(batch, torch.ones(batch.shape[0]))
        return embeddings.reshape(batch.shape[0], -1).float().cpu().numpy()

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        def encode(batch: np.ndarray) -> np.ndarray:
            return self._encode(torch.from_numpy(batch))

        return embed_in_equal_length_batches(waves, encode, self.dim, self.max_batch, MIN_SAMPLES)


def _deterministic_pooling_noise(shape_of_tensor: torch.Size, device: Any = None, *, eps: float) -> torch.Tensor:
    """The expected value of StatisticsPooling's random [eps, 9*eps] noise, as a constant."""
    return torch.full(tuple(shape_of_tensor), 5 * eps, device=device)


def _make_pooling_deterministic(classifier: Any) -> None:
    from speechbrain.nnet.pooling import StatisticsPooling

    for module in classifier.mods.modules():
        if isinstance(module, StatisticsPooling):
            module._get_gauss_noise = functools.partial(_deterministic_pooling_noise, eps=module.eps)


# ---------------------------------------------------------------------------------------------
# Loading


def load_xvector(device: str = "cpu", source: str | None = None) -> SpeechBrainEncoder:
    """x-vector (Snyder et al. 2018) trained on VoxCeleb; 512-d. `source`: model folder or Hub id."""
    return _load("xvector", source or XVECTOR_SOURCE, XVECTOR_SOURCE, device)


def load_ecapa(device: str = "cpu", source: str | None = None) -> SpeechBrainEncoder:
    """ECAPA-TDNN (Desplanques et al. 2020) trained on VoxCeleb; 192-d. `source`: model folder or Hub id."""
    return _load("ecapa", source or ECAPA_SOURCE, ECAPA_SOURCE, device)


def _load(name: str, source: str, default_hub_id: str, device: str) -> SpeechBrainEncoder:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    source = str(source)
    folder = Path(source).expanduser()
    if folder.is_dir():
        classifier = _from_folder(name, folder.resolve(), default_hub_id, device)
    elif looks_like_hub_id(source):
        classifier = _from_hub(name, source, device)
    else:
        raise _loading_error(name, source, default_hub_id, "no such folder")
    return SpeechBrainEncoder(classifier, name)


def _from_folder(name: str, folder: Path, default_hub_id: str, device: str) -> Any:
    """Load from a local model folder, without any network access."""
    hparams = folder / HPARAMS_FILE
    if not hparams.is_file():
        raise _loading_error(name, str(folder), default_hub_id, f"no {HPARAMS_FILE} in that folder")
    digest = hashlib.sha1(str(folder).encode()).hexdigest()[:12]
    savedir = cache_dir("speechbrain", f"local-{folder.name}-{digest}")
    try:
        # the Hub's yaml files point their checkpoints at `pretrained_path: speechbrain/...`, a Hub
        # id; aim it at this folder so a downloaded copy is used as it is
        text = hparams.read_text(encoding="utf-8")
        overrides = {"pretrained_path": str(folder)} if _DEFINES_PRETRAINED_PATH.search(text) else {}
        # overwrite: re-link every file, so a savedir never serves files from an earlier folder state
        return _from_hparams(str(folder), savedir, device, overrides, allow_network=False, overwrite=True)
    except Exception as error:  # noqa: BLE001 - any failure here means "these weights are unusable"
        raise _loading_error(name, str(folder), default_hub_id, _describe(error)) from error


def _from_hub(name: str, hub_id: str, device: str) -> Any:
    """Load a Hub model: from disk if it is there, else download it if the Hub can be reached."""
    savedir = cache_dir("speechbrain", hub_id.replace("/", "--"))
    try:
        return _from_hparams(hub_id, savedir, device, {}, allow_network=False)
    except Exception as error:  # noqa: BLE001 - not on disk (or broken); maybe the network helps
        cached_error = error
    try:
        savedir.rmdir()  # leave no empty folder behind for a name that was never downloaded
    except OSError:
        pass
    # huggingface_hub's LocalEntryNotFoundError is a FileNotFoundError: "not downloaded yet"
    on_disk = "not downloaded yet" if isinstance(cached_error, FileNotFoundError) else _describe(cached_error)
    if _hub_offline():
        raise _loading_error(name, hub_id, hub_id, f"{on_disk}, and HF_HUB_OFFLINE is set") from cached_error
    if not _hub_reachable():
        reason = f"{on_disk}, and the Hugging Face Hub is unreachable"
        raise _loading_error(name, hub_id, hub_id, reason) from cached_error
    log.info("downloading %s encoder weights from the Hugging Face Hub (%s)", name, hub_id)
    try:
        return _from_hparams(hub_id, savedir, device, {}, allow_network=True)
    except Exception as error:  # noqa: BLE001
        raise _loading_error(name, hub_id, hub_id, _describe(error)) from error


def _from_hparams(
    source: str, savedir: Path, device: str, overrides: dict, *, allow_network: bool, overwrite: bool = False
) -> Any:
    EncoderClassifier = _import_speechbrain()
    from speechbrain.utils.fetching import FetchConfig

    transfer = _TransferReport()
    checkpoints_logger = logging.getLogger("speechbrain.utils.checkpoints")
    checkpoints_logger.addFilter(transfer)
    try:
        classifier = EncoderClassifier.from_hparams(
            source=source,
            savedir=str(savedir),
            overrides=overrides,
            run_opts={"device": device},
            fetch_config=FetchConfig(allow_network=allow_network, overwrite=overwrite),
        )
    finally:
        checkpoints_logger.removeFilter(transfer)
    _quiet_speechbrain_logging()  # loggers of modules SpeechBrain imported lazily while loading
    transfer.check()
    return classifier


class _TransferReport(logging.Filter):
    """Catches SpeechBrain's warnings about checkpoint keys that do not fit the model.

    SpeechBrain loads checkpoints non-strictly: a parameter missing from the file only produces a
    warning (with the whole module printed, once per key) and the model keeps its random initial
    value. For the embedding model that means meaningless embeddings, so it becomes an error here;
    mismatches in parts we do not use (the speaker classifier) are only logged at debug level.
    """

    _PATTERN = re.compile(
        r"loading from (?P<path>.+), the (?P<kind>transferred parameters did not have|object could not use)"
        r".* the key: (?P<key>\S+)\s*$",
        re.DOTALL,
    )

    def __init__(self) -> None:
        super().__init__()
        self.missing: list[tuple[str, str]] = []  # (checkpoint file name, parameter the file lacks)
        self.unexpected: list[tuple[str, str]] = []  # (checkpoint file name, parameter the model lacks)

    def filter(self, record: logging.LogRecord) -> bool:
        match = self._PATTERN.search(record.getMessage())
        if match is None:
            return True
        found = self.missing if match["kind"].startswith("transferred") else self.unexpected
        found.append((Path(match["path"]).name, match["key"]))
        return False  # keep the module dumps off the console

    def check(self) -> None:
        lacking = [key for file, key in self.missing if file == "embedding_model.ckpt"]
        if lacking:
            raise ModelLoadingError(
                f"embedding_model.ckpt does not fit the model in {HPARAMS_FILE}: {len(lacking)} parameters "
                f"missing, e.g. {lacking[0]}"
            )
        for file, key in self.missing + self.unexpected:
            log.debug("speechbrain checkpoint %s: parameter %s left unused or not found", file, key)


@functools.cache
def _import_speechbrain() -> type[Any]:  # EncoderClassifier; SpeechBrain is untyped
    """Import SpeechBrain's EncoderClassifier with torchaudio made importable and logging quietened."""
    _quiet_speechbrain_logging()
    # On import SpeechBrain turns on TF32 matmuls for the whole process ("quirks"): on recent GPUs
    # that is ~1e-3 relative precision for every model, ours included. Keep fp32 unless asked.
    os.environ.setdefault("SB_DISABLE_QUIRKS", "allow_tf32")
    import_torchaudio_without_extension()
    try:
        from speechbrain.inference.speaker import EncoderClassifier
    except ImportError as error:
        raise ModelLoadingError(
            f"the SpeechBrain encoders need `pip install 'persona-cli[speechbrain]'` ({_describe(error)})"
        ) from error
    _quiet_speechbrain_logging()
    return EncoderClassifier


def _quiet_speechbrain_logging() -> None:
    """SpeechBrain logs every fetched file at INFO; keep it at WARNING unless SB_LOG_LEVEL says otherwise.

    SpeechBrain's `get_logger` gives each module's logger its own level from SB_LOG_LEVEL (so the
    parent's level alone does not help), and a few modules use plain loggers that inherit it.
    """
    if os.environ.setdefault("SB_LOG_LEVEL", "WARNING") != "WARNING":
        return  # the user chose a level: leave it
    loggers = [logging.getLogger("speechbrain")] + [
        logger
        for logger_name, logger in list(logging.root.manager.loggerDict.items())
        if logger_name.startswith("speechbrain.") and isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        if logger.level < logging.WARNING and (logger.level != logging.NOTSET or logger.name == "speechbrain"):
            logger.setLevel(logging.WARNING)


def _loading_error(name: str, source: str, hub_id: str, reason: str) -> ModelLoadingError:
    return ModelLoadingError(
        f"{name} encoder: cannot load weights from {source!r} ({reason}). To provide them, download the "
        f"model folder (hyperparams.yaml, embedding_model.ckpt, mean_var_norm_emb.ckpt if present, and any "
        f"other file it lists) on a machine with network, e.g. `hf download {hub_id} "
        f"--local-dir DIR`, then pass `--encoder-source DIR`."
    )
