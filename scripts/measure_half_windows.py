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
from persona_cli.audio import SAMPLE_RATE, iter_chunks  # noqa: E402
from persona_cli.encoders.ge2e import HOP, MAX_PARTIALS_PER_FORWARD, PARTIAL_FRAMES, GE2EEncoder  # noqa: E402
from persona_cli.encoders.mel import power_mel  # noqa: E402
from persona_cli.speech import VAD_WINDOW, normalize_volume, speech_seconds, voiced_windows  # noqa: E402

HALF = diarization.WINDOW_STEP_SAMPLES  # 0.8 s: half a window, and the windows' step


@torch.inference_mode()
def listen_in_halves(buffer, start, new_from, encoder, progress):
    """diarization._listen_to_chunk with each window's vector made from its two halves' embeddings."""
    wave = normalize_volume(buffer)
    voiced = voiced_windows(wave)
    if speech_seconds(wave, voiced) == 0:
        voiced = np.zeros_like(voiced)
    first = -(-start // HALF) * HALF
    starts = np.arange(first, start + len(buffer) - diarization.WINDOW_SAMPLES + 1, HALF) - start
    flags = diarization.WINDOW_SAMPLES // VAD_WINDOW
    shares = np.array([voiced[s // VAD_WINDOW : s // VAD_WINDOW + flags].mean() for s in starts])
    starts = starts[shares >= diarization.MIN_VOICED_SHARE] if len(starts) else starts
    vectors = np.zeros((0, encoder.dim), np.float32)
    if len(starts):
        mel = power_mel(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), encoder.mel_filters, HOP)
        halves = np.unique(np.concatenate([starts, starts + HALF]))
        parts = torch.stack([mel[s // HOP : s // HOP + PARTIAL_FRAMES // 2] for s in halves])
        step = 2 * MAX_PARTIALS_PER_FORWARD  # the same frames per LSTM call as the windows' calls
        embeds = torch.cat([encoder.forward(parts[i : i + step])[0] for i in range(0, len(parts), step)]).numpy()
        row = {int(s): i for i, s in enumerate(halves)}
        summed = embeds[[row[int(s)] for s in starts]] + embeds[[row[int(s) + HALF] for s in starts]]
        vectors = summed / np.linalg.norm(summed, axis=1, keepdims=True)
    if progress is not None:
        progress((len(buffer) - new_from) / SAMPLE_RATE)
    centres = (start + starts + diarization.WINDOW_SAMPLES / 2) / SAMPLE_RATE
    return diarization._ChunkResult(voiced[new_from // VAD_WINDOW :], centres, vectors)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a work folder of benchmarks/diarization.py")
    args = parser.parse_args()
    encoder = GE2EEncoder()
    as_it_is = diarization._listen_to_chunk
    print(
        "| listening | DER ±0.25 s clean / noisy | DER, no collar, clean / noisy | count right clean / noisy | listening time |"
    )
    print("|---|---|---|---|---|")
    for name, listen_to_chunk in (("1.6 s windows (now)", as_it_is), ("0.8 s halves, summed", listen_in_halves)):
        diarization._listen_to_chunk = listen_to_chunk
        scores, seconds = measure(args.work, encoder)
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
        print(f"| {name} | {cells[0]} | {cells[1]} | {' / '.join(counts)} | {seconds:.1f} s |")
    diarization._listen_to_chunk = as_it_is


if __name__ == "__main__":
    main()
