"""Cheaper GE2E forward passes (issue #19), measured before any accuracy run: how many partials each
slicing cuts per corpus, and how far each variant's vectors move from the float32 network's.

    python scripts/measure_ge2e_variants.py                 # 300 clips per corpus of ../shared/data
    python scripts/measure_ge2e_variants.py --clips 50      # a quick look

Slicings, on each clip's speech (silences trimmed as the encoder trims them):
- resemblyzer: `embed_utterance`'s, a partial every 1/1.3 s (revision 1 of persona's ge2e);
- cover: the fewest 1.6 s partials that cover every frame, evenly spaced (revision 2).

Variants of the network, on the same partials: int8 dynamic quantisation of the LSTMs and the linear
layer (`torch.ao.quantization.quantize_dynamic`, per-tensor and per-channel weights). For each, the
cosine between its `ge2e-layers` vectors and float32's (embedding part and layer statistics apart),
and the LSTM's time per partial on one thread, 32 partials per call as persona runs it.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from persona_cli.audio import find_audio_files, load_audio  # noqa: E402
from persona_cli.encoders.ge2e import (  # noqa: E402
    MAX_PARTIALS_PER_FORWARD,
    GE2ELayersEncoder,
    partial_starts,
    resemblyzer_partial_starts,
    trim_long_silences,
)
from persona_cli.speech import normalize_volume  # noqa: E402

CORPORA = ("commonvoice", "ravdess", "emodb", "ased", "urdu", "baved", "librispeech")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300, help="clips per corpus, evenly spread (default 300)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")

    print("| corpus | clips | mean speech s | partials, resemblyzer | partials, cover | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    sample: list[np.ndarray] = []
    for corpus in CORPORA:
        files = sorted(find_audio_files([DATA / corpus]), key=str)
        files = files[:: max(1, len(files) // args.clips)][: args.clips]
        waves = [load_audio(path) for path in files]
        sample += waves[:10]
        lengths = [len(trim_long_silences(normalize_volume(wave))) for wave in waves]
        old = sum(len(resemblyzer_partial_starts(n)) for n in lengths)
        new = sum(len(partial_starts(n)) for n in lengths)
        print(f"| {corpus} | {len(waves)} | {np.mean(lengths) / 16000:.2f} | {old} | {new} | {new / old:.2f} |")

    reference = GE2ELayersEncoder()
    expected = reference.embed(sample)
    partials = torch.cat([reference.partials(wave) for wave in sample[:8]])[:MAX_PARTIALS_PER_FORWARD]
    print(f"\n{len(sample)} clips (10 per corpus); cosine to float32 ge2e-layers, min / mean; LSTM ms per partial")
    print("| variant | embedding cosine | layer-statistics cosine | ms per partial |")
    print("|---|---|---|---:|")
    variants = {
        "float32": None,
        "int8, per-tensor": torch.ao.quantization.default_dynamic_qconfig,
        "int8, per-channel": torch.ao.quantization.per_channel_dynamic_qconfig,
    }
    for name, qconfig in variants.items():
        encoder = GE2ELayersEncoder()
        if qconfig is not None:
            encoder.network = torch.ao.quantization.quantize_dynamic(
                encoder.network, {torch.nn.LSTM: qconfig, torch.nn.Linear: qconfig}, dtype=torch.qint8
            )
        vectors = encoder.embed(sample)
        embedding = _cosines(vectors[:, :256], expected[:, :256])
        stats = _cosines(vectors[:, 256:], expected[:, 256:])
        print(
            f"| {name} | {embedding.min():.3f} / {embedding.mean():.3f} | {stats.min():.3f} / {stats.mean():.3f} "
            f"| {_ms_per_partial(encoder.network, partials):.2f} |"
        )
    return 0


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@torch.inference_mode()
def _ms_per_partial(network: torch.nn.Module, partials: torch.Tensor, repeat: int = 10) -> float:
    network(partials)
    started = time.perf_counter()
    for _ in range(repeat):
        network(partials)
    return (time.perf_counter() - started) / repeat / len(partials) * 1000


if __name__ == "__main__":
    sys.exit(main())
