"""Train the model that ships inside the package, on every labelled corpus in ../shared/data.

    python scripts/train_bundled_model.py [--data ../shared/data] [--encoder ge2e]

Reads RAVDESS (emotion, gender), EmoDB (emotion, gender, age) and Common Voice (gender, age),
embeds every clip, trains the paper's CNN head with the default recipe on all of them, and writes
persona_cli/models/persona-<encoder>.safetensors. Deterministic: the same data gives the same file.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from persona_cli.corpora import read_corpora, summarize
from persona_cli.encoders import load_encoder
from persona_cli.model import bundled_model_path
from persona_cli.pipeline import PredictOptions, embed_files
from persona_cli.train import Targets, TrainConfig, fit

CORPORA = ("ravdess", "emodb", "commonvoice")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--encoder", default="ge2e")
    parser.add_argument("--out", type=Path, default=None, help="default: the bundled model path")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)

    clips = read_corpora([f"{name}:{args.data / name}" for name in CORPORA])
    print(summarize(clips))
    encoder = load_encoder(args.encoder)
    started = time.perf_counter()
    results = list(embed_files([c.path for c in clips], encoder, PredictOptions()))
    usable = [i for i, r in enumerate(results) if r.vector is not None]
    for r in results:
        if r.error:
            print(f"skipped {r.path}: {r.error}")
    audio_seconds = sum(results[i].duration_s for i in usable)
    print(f"embedded {len(usable)} clips ({audio_seconds / 3600:.2f} h) in {time.perf_counter() - started:.0f} s")

    kept = [clips[i] for i in usable]
    features = np.stack([results[i].vector for i in usable])
    summary = {
        "corpora": {name: sum(c.corpus == name for c in kept) for name in CORPORA},
        "clips": len(kept),
        "audio_hours": round(audio_seconds / 3600, 2),
        "recipe": "scripts/train_bundled_model.py",
        "licence": "CC BY-NC-SA 4.0 (inherits RAVDESS terms): non-commercial use only",
    }
    model, history = fit(features, Targets.from_clips(kept), [c.speaker for c in kept], args.encoder,
                         TrainConfig(), training_summary=summary)
    path = model.save(args.out or bundled_model_path(args.encoder))
    print(f"best epoch {history.best_epoch + 1} of {len(history.train_loss)}; wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
