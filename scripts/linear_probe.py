"""A linear reference for the network: logistic regression on the same cached embeddings and the same
speaker-grouped folds as `persona train`, scored on RAVDESS emotion.

    python scripts/linear_probe.py --encoder mfcc                      # trained on RAVDESS + EmoDB emotions
    python scripts/linear_probe.py --encoder mfcc --train-corpora ravdess

scikit-learn comes with resemblyzer's librosa; it is not a persona dependency.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from persona_cli.experiments import embed_corpora, encoder_for
from persona_cli.pipeline import PredictOptions
from persona_cli.train import make_folds

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="mfcc")
    parser.add_argument("--train-corpora", nargs="+", default=["ravdess", "emodb"])
    parser.add_argument("--C", type=float, nargs="+", default=[0.03, 0.1, 0.3], help="inverse L2 strengths to try")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    options = PredictOptions()
    data = embed_corpora([str(DATA / name) for name in ("ravdess", "emodb", "commonvoice")],
                         encoder_for(args.encoder, options), options)
    corpora = np.array([c.corpus for c in data.clips])
    emotions = np.array([c.emotion or "" for c in data.clips])
    for strength in args.C:
        correct = total = 0
        for test in make_folds(data.clips, 5, "speaker", seed=0):
            train = np.setdiff1d(np.arange(len(data.clips)), test)
            train = train[(emotions[train] != "") & np.isin(corpora[train], args.train_corpora)]
            model = make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=3000))
            model.fit(data.features[train], emotions[train])
            scored = test[(emotions[test] != "") & (corpora[test] == "ravdess")]
            correct += int((model.predict(data.features[scored]) == emotions[scored]).sum())
            total += len(scored)
        print(f"{args.encoder}, trained on {'+'.join(args.train_corpora)}, C={strength}: "
              f"RAVDESS emotion accuracy {100 * correct / total:.1f} %")


if __name__ == "__main__":
    main()
