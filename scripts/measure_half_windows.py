"""Can `--per segment`'s listening pass run the GE2E LSTM over each frame once instead of twice?

diarization.listen embeds 1.6 s windows every 0.8 s, so every frame of speech goes through the LSTM
twice, and that LSTM is the largest single cost of `--per segment` (docs/long-recordings.md). The
variant here embeds each 0.8 s half once and makes every 1.6 s window's vector the normalised sum
of its two halves' embeddings: the same windows, the same clustering, half the LSTM frames. It
prints, for the listening as it is and for the variant, DER with the benchmark's collars, the
speaker count and the listening's time (one process, `--workers 0`, on this machine's cores).

    python benchmarks/diarization.py --build-only --work /tmp/diar24
    pip install -e '.[bench]'   # pyannote.metrics
    python scripts/measure_half_windows.py --work /tmp/diar24
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import diarization as benchmark  # noqa: E402

from persona_cli import diarization  # noqa: E402
from persona_cli.audio import iter_chunks  # noqa: E402
from persona_cli.encoders.ge2e import HOP, PARTIAL_FRAMES, GE2EEncoder  # noqa: E402

HALF = diarization.WINDOW_STEP_SAMPLES  # 0.8 s: half a window, and the windows' step


def vectors_from_halves(mel: torch.Tensor, starts: np.ndarray, encoder: GE2EEncoder) -> np.ndarray:
    """diarization._window_vectors with each window's vector made from its two halves' embeddings."""
    halves = np.unique(np.concatenate([starts, starts + HALF]))
    parts = torch.stack([mel[s // HOP : s // HOP + PARTIAL_FRAMES // 2] for s in halves])
    step = 2 * diarization.WINDOWS_PER_FORWARD  # the same frames per LSTM call as the windows' calls
    embeds = torch.cat([encoder.forward(parts[i : i + step])[0] for i in range(0, len(parts), step)]).numpy()
    row = {int(s): i for i, s in enumerate(halves)}
    summed = embeds[[row[int(s)] for s in starts]] + embeds[[row[int(s) + HALF] for s in starts]]
    return summed / np.linalg.norm(summed, axis=1, keepdims=True)


def measure(work: Path, encoder: GE2EEncoder) -> tuple[dict, float]:
    """Each conversation's scores (benchmark.score_conversation) and the seconds spent listening."""
    from pyannote.core import Annotation, Segment

    reference = benchmark.load_rttm(work / "reference.rttm")
    scores, listening_s = {}, 0.0
    for path in sorted((work / "audio").glob("*.flac")):
        began = time.perf_counter()
        listening = diarization.listen(iter_chunks(path, 30.0), encoder, 0)
        listening_s += time.perf_counter() - began
        hypothesis = Annotation(uri=path.stem)
        for number, turn in enumerate(diarization.diarize(listening)):
            hypothesis[Segment(turn.start_s, turn.end_s), number] = f"S{turn.speaker}"
        scores[path.stem] = benchmark.score_conversation(reference[path.stem], hypothesis, sf.info(path).duration)
    return scores, listening_s


TABLE_HEAD = (
    "| listening | DER ±0.25 s clean / noisy | DER, no collar, clean / noisy | count right clean / noisy | listening time |\n"
    "|---|---|---|---|---|"
)


def table_row(name: str, scores: dict, seconds: float) -> str:
    """One line of TABLE_HEAD's table from measure()'s results."""
    cells = []
    for collar in benchmark.COLLARS:
        rates = []
        for variant in ("clean", "noisy"):
            mine = [s[collar] for uri, s in scores.items() if uri.startswith(variant)]
            errors = sum(s["missed detection"] + s["false alarm"] + s["confusion"] for s in mine)
            rates.append(f"{100 * errors / sum(s['total'] for s in mine):.1f}")
        cells.append(" / ".join(rates) + " %")
    counts = []
    for variant in ("clean", "noisy"):
        mine = [s for uri, s in scores.items() if uri.startswith(variant)]
        counts.append(f"{sum(s['n_hypothesis'] == s['n_reference'] for s in mine)}/{len(mine)}")
    return f"| {name} | {cells[0]} | {cells[1]} | {' / '.join(counts)} | {seconds:.1f} s |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a work folder of benchmarks/diarization.py")
    args = parser.parse_args()
    encoder = GE2EEncoder()
    as_it_is = diarization._window_vectors
    print(TABLE_HEAD)
    for name, window_vectors in (("1.6 s windows (now)", as_it_is), ("0.8 s halves, summed", vectors_from_halves)):
        diarization._window_vectors = window_vectors
        print(table_row(name, *measure(args.work, encoder)))
    diarization._window_vectors = as_it_is


if __name__ == "__main__":
    main()
