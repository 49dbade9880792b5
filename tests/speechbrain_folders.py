"""SpeechBrain model folders with random weights, in the layout of speechbrain/spkrec-{xvect,ecapa}-voxceleb.

Tests load x-vector and ECAPA through SpeechBrain's real `from_hparams` path without downloads, and
benchmarks/throughput.py times full-size networks (FULL) with them: speed does not depend on the
weights' values.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch

from persona_cli.encoders import speechbrain as sb_encoders

#: small networks for tests; the output widths match the real models (512 and 192)
SMALL = {
    "xvector": {"tdnn_channels": [64, 64, 64, 64, 128], "lin_neurons": 512},
    "ecapa": {"channels": [64, 64, 64, 64, 192], "attention_channels": 16, "se_channels": 16, "lin_neurons": 192},
}
#: the real models' sizes, for realistic speed measurements
FULL = {
    "xvector": {"tdnn_channels": [512, 512, 512, 512, 1500], "lin_neurons": 512},
    "ecapa": {
        "channels": [1024, 1024, 1024, 1024, 3072],
        "attention_channels": 128,
        "se_channels": 128,
        "lin_neurons": 192,
    },
}

_EMBEDDING_MODEL = {
    "xvector": """\
        embedding_model: !new:speechbrain.lobes.models.Xvector.Xvector
            in_channels: !ref <n_mels>
            activation: !name:torch.nn.LeakyReLU
            tdnn_blocks: 5
            tdnn_channels: {tdnn_channels}
            tdnn_kernel_sizes: [5, 3, 3, 1, 1]
            tdnn_dilations: [1, 2, 3, 1, 1]
            lin_neurons: {lin_neurons}

        classifier: !new:speechbrain.lobes.models.Xvector.Classifier
            input_shape: [null, null, {lin_neurons}]
            activation: !name:torch.nn.LeakyReLU
            lin_blocks: 1
            lin_neurons: {lin_neurons}
            out_neurons: !ref <out_n_neurons>
        """,
    "ecapa": """\
        embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
            input_size: !ref <n_mels>
            channels: {channels}
            kernel_sizes: [5, 3, 3, 3, 1]
            dilations: [1, 2, 3, 4, 1]
            attention_channels: {attention_channels}
            se_channels: {se_channels}
            lin_neurons: {lin_neurons}

        classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
            input_size: {lin_neurons}
            out_neurons: !ref <out_n_neurons>
        """,
}

_HYPERPARAMS = """\
    # ############################################################################
    # Model: {title} (random weights, built by persona's tests)
    # ############################################################################

    # Feature parameters
    n_mels: {n_mels}

    # Pretrain folder (HuggingFace)
    pretrained_path: {hub_id}

    # Output parameters
    out_n_neurons: 4

    # Model params
    compute_features: !new:speechbrain.lobes.features.Fbank
        n_mels: !ref <n_mels>

    mean_var_norm: !new:speechbrain.processing.features.InputNormalization
        norm_type: sentence
        std_norm: False

    {embedding_model}
    mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
        norm_type: global
        std_norm: False

    modules:
        compute_features: !ref <compute_features>
        mean_var_norm: !ref <mean_var_norm>
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>

    label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

    pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
        loadables:
            embedding_model: !ref <embedding_model>
            mean_var_norm_emb: !ref <mean_var_norm_emb>
            classifier: !ref <classifier>
            label_encoder: !ref <label_encoder>
        paths:
            embedding_model: !ref <pretrained_path>/embedding_model.ckpt
            mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
            classifier: !ref <pretrained_path>/classifier.ckpt
            label_encoder: !ref <pretrained_path>/label_encoder.txt
    """


def build_model_folder(folder: Path, kind: str, sizes: dict | None = None, seed: int = 0) -> Path:
    """Write a SpeechBrain model folder with random weights: hyperparams.yaml + *.ckpt + label_encoder.txt.

    The yaml follows the Hub repos (including `pretrained_path: speechbrain/...`, which a local
    load must override), and the weights are the state_dicts of the very modules that yaml builds.
    """
    from hyperpyyaml import load_hyperpyyaml

    sb_encoders._import_speechbrain()  # torchaudio shim, before hyperpyyaml imports speechbrain modules
    from speechbrain.dataio.encoder import CategoricalEncoder

    sizes = sizes or SMALL[kind]
    hub_id = sb_encoders.XVECTOR_SOURCE if kind == "xvector" else sb_encoders.ECAPA_SOURCE
    model_yaml = textwrap.indent(textwrap.dedent(_EMBEDDING_MODEL[kind]).format(**sizes), "    ")
    text = textwrap.dedent(
        _HYPERPARAMS.format(
            title=kind, n_mels=24 if kind == "xvector" else 80, hub_id=hub_id, embedding_model=model_yaml.strip() + "\n"
        )
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hyperparams.yaml").write_text(text)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        hparams = load_hyperpyyaml(text)
    torch.save(hparams["embedding_model"].state_dict(), folder / "embedding_model.ckpt")
    torch.save(hparams["classifier"].state_dict(), folder / "classifier.ckpt")
    dim = sizes["lin_neurons"]
    stats = {"count": 1, "glob_mean": torch.zeros(dim), "glob_std": torch.ones(dim)}
    torch.save(stats, folder / "mean_var_norm_emb.ckpt")
    labels = CategoricalEncoder()
    labels.update_from_iterable([f"id1000{i}" for i in range(4)])
    labels.save(folder / "label_encoder.txt")
    return folder
