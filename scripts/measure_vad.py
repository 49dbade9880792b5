"""Which voice detector for diarization (issue #14): persona's own (webrtcvad) against Silero VAD,
frame by frame against the reference of the synthetic conversations of benchmarks/diarization.py.

    python scripts/measure_vad.py                          # builds 12 clean + 12 noisy conversations of 1-3 min
    python scripts/measure_vad.py --work /tmp/diar         # reuses the conversations diarization.py built there
    python scripts/measure_vad.py --conversations 2 --minutes 0.5 1   # a quick look

Silero VAD is the `silero-vad` pip package (its weights ship in the wheel, so it runs offline); it is
not one of persona's dependencies: `pip install silero-vad` to run this script.

Detectors, each on the 16 kHz recording:
- persona: what persona_cli/diarization.py does per 30 s chunk: normalize_volume, then
  speech.voiced_windows (webrtcvad mode 3 on 30 ms windows, at least 5 of 8 around each flagged),
  and no speech at all in a chunk that speech_seconds judges noise or a steady tone (also shown
  without that check, to tell the detector's misses from the check's);
- silero: silero_vad.get_speech_timestamps with its defaults (threshold 0.5, speech of at least
  250 ms, pauses of at least 100 ms, 30 ms padding), the way its README uses it;
- silero frames: the model's speech probability per 32 ms frame (`audio_forward`), >= 0.5, no smoothing.

Scores over 10 ms frames (a frame is speech in the reference when its centre lies in a reference
segment, whoever speaks; babble in the noise is not speech): accuracy, miss rate (share of reference
speech called non-speech) and false-alarm rate (share of reference non-speech called speech), summed
over conversations, per variant and noise. Speed: seconds of audio per second of process CPU time,
torch and everything else on one thread, decoding not included.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from diarization import DATA, build_conversations  # noqa: E402

from persona_cli.speech import VAD_WINDOW, normalize_volume, speech_seconds, voiced_windows  # noqa: E402

SAMPLE_RATE = 16_000
FRAME = SAMPLE_RATE // 100  # 10 ms scoring frames
CHUNK = 30 * SAMPLE_RATE  # persona's chunk (audio.iter_chunks), a whole number of 30 ms windows
SILERO_FRAME = 512  # samples per Silero probability at 16 kHz


def persona_frames(wave: np.ndarray, noise_check: bool = True) -> np.ndarray:
    """Speech flags per 10 ms frame from persona's detector, chunk by chunk as diarization.listen runs it."""
    flags = []
    for start in range(0, len(wave), CHUNK):
        chunk = normalize_volume(wave[start : start + CHUNK])
        voiced = voiced_windows(chunk)
        if noise_check and speech_seconds(chunk, voiced) == 0:  # noise or a tone, by persona's checks
            voiced = np.zeros_like(voiced)
        flags.append(np.repeat(voiced, VAD_WINDOW // FRAME))
    return _fit(np.concatenate(flags), len(wave) // FRAME)


def silero_timestamps_frames(wave: np.ndarray, model) -> np.ndarray:
    import torch
    from silero_vad import get_speech_timestamps

    frames = np.zeros(len(wave) // FRAME, bool)
    for span in get_speech_timestamps(torch.from_numpy(wave), model, sampling_rate=SAMPLE_RATE):
        frames[span["start"] // FRAME : span["end"] // FRAME] = True
    return frames


def silero_probability_frames(wave: np.ndarray, model) -> np.ndarray:
    import torch

    with torch.inference_mode():
        probabilities = model.audio_forward(torch.from_numpy(wave), SAMPLE_RATE)[0].numpy()
    centres = (np.arange(len(wave) // FRAME) * FRAME + FRAME // 2) // SILERO_FRAME
    return probabilities[np.minimum(centres, len(probabilities) - 1)] >= 0.5


def _fit(flags: np.ndarray, n: int) -> np.ndarray:
    """flags cut or padded (with False) to n frames: the detectors drop a last partial window."""
    return np.concatenate([flags[:n], np.zeros(max(0, n - len(flags)), bool)])


def reference_frames(segments, n: int) -> np.ndarray:
    centres = (np.arange(n) + 0.5) / 100
    frames = np.zeros(n, bool)
    for start, end, _ in segments:
        frames[(centres >= start) & (centres < end)] = True
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="diarization.py's work folder (built there if missing)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--conversations", type=int, default=12, help="per variant")
    parser.add_argument("--minutes", type=float, nargs=2, default=(1.0, 3.0), metavar=("MIN", "MAX"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from silero_vad import load_silero_vad

    torch.set_num_threads(1)
    model = load_silero_vad()
    detectors = {
        "persona (webrtcvad 3, smoothed)": persona_frames,
        "persona without the noise check": lambda wave: persona_frames(wave, noise_check=False),
        "silero (timestamps, defaults)": lambda wave: silero_timestamps_frames(wave, model),
        "silero (frames >= 0.5)": lambda wave: silero_probability_frames(wave, model),
    }
    counts: dict = defaultdict(lambda: np.zeros(4))  # (detector, group) -> hits, misses, false alarms, rejections
    cpu: dict = defaultdict(float)
    audio_s = 0.0
    with tempfile.TemporaryDirectory(prefix="persona-vad-") as tmp:
        work = args.work or Path(tmp)
        conversations = build_conversations(work, args.data, args.conversations, tuple(args.minutes), args.seed)
        for c in conversations:
            wave, rate = sf.read(work / "audio" / f"{c.uri}.flac", dtype="float32")
            assert rate == SAMPLE_RATE
            audio_s += len(wave) / SAMPLE_RATE
            truth = reference_frames(c.segments, len(wave) // FRAME)
            groups = ["all", c.variant] + ([f"{c.variant}: {c.noise}"] if c.noise else [])
            for name, detect in detectors.items():
                if hasattr(model, "reset_states"):
                    model.reset_states()
                started = time.process_time()
                found = detect(wave)
                cpu[name] += time.process_time() - started
                tally = np.array(
                    [(truth & found).sum(), (truth & ~found).sum(), (~truth & found).sum(), (~truth & ~found).sum()]
                )
                for group in groups:
                    counts[name, group] += tally
            print(f"{c.uri} done", file=sys.stderr)
    hits, misses, false_alarms, rejections = counts[next(iter(detectors)), "all"]
    speech_frames, total_frames = hits + misses, hits + misses + false_alarms + rejections
    group_names = list(dict.fromkeys(g for _, g in counts))
    lines = [
        f"{len(conversations)} conversations, {audio_s / 60:.1f} min; 10 ms frames, "
        f"{100 * speech_frames / total_frames:.0f} % of them speech in the reference",
        "",
        "| detector | set | accuracy | miss | false alarm | audio s per CPU s (1 thread) |",
        "|---|---|---|---|---|---|",
    ]
    for group in group_names:
        for name in detectors:
            hits, misses, false_alarms, rejections = counts[name, group]
            accuracy = (hits + rejections) / (hits + misses + false_alarms + rejections)
            speed = f"{audio_s / cpu[name]:.0f}" if group == "all" else ""
            lines.append(
                f"| {name} | {group} | {100 * accuracy:.1f} % | {100 * misses / (hits + misses):.1f} % "
                f"| {100 * false_alarms / max(1, false_alarms + rejections):.1f} % | {speed} |"
            )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
