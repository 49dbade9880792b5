"""How well each stage of the GE2E front end runs on two threads of one process, printed as a table.

    python scripts/measure_thread_scaling.py                 # 100 Common Voice MP3s
    python scripts/measure_thread_scaling.py --files 200

persona's workers are threads of one interpreter. Each stage is timed running over the same
decoded files twice in one thread, then once in each of two threads at the same time: a stage that
never holds the interpreter lock finishes in half the time ("scaling" 2.0); one that holds it
throughout takes as long (1.0). Run it on an otherwise idle machine with at least two cores.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "commonvoice"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100, help="Common Voice MP3s to run (default 100)")
    args = parser.parse_args()

    import torch

    from persona_cli.audio import find_audio_files, iter_chunks, load_audio
    from persona_cli.encoders import load_encoder
    from persona_cli.speech import normalize_volume, speech_seconds, voiced_windows

    torch.set_num_threads(1)  # as each worker runs
    files = sorted(find_audio_files([DEFAULT_CORPUS]), key=str)[: args.files]
    waves = [load_audio(f) for f in files]
    loud = [normalize_volume(w) for w in waves]
    voiced = [voiced_windows(w) for w in loud]
    encoder = load_encoder("ge2e")
    prosody = load_encoder("prosody")

    def each(stage: Callable[[int], object]) -> Callable[[], None]:
        return lambda: [stage(i) for i in range(len(files))]

    def in_groups_of_8() -> None:
        for start in range(0, len(waves), 8):
            encoder.embed_with_speech(waves[start : start + 8])

    stages = {
        "decode + resample": each(lambda i: list(iter_chunks(files[i]))),
        "volume normalisation": each(lambda i: normalize_volume(waves[i])),
        "voice activity (webrtcvad)": each(lambda i: voiced_windows(loud[i])),
        "speech check": each(lambda i: speech_seconds(loud[i], voiced[i])),
        "GE2E front end (all of the above but decoding, + mel)": each(lambda i: encoder._partials_and_speech(waves[i])),
        "GE2E encoder, 8 files per call": in_groups_of_8,
        "prosody (the default's other half)": each(lambda i: prosody.embed([waves[i]])),
    }
    print(f"{len(files)} files, {sum(len(w) for w in waves) / 16_000 / 60:.1f} min of audio")
    print("| stage | one thread, 2 passes | two threads, 1 pass each | scaling |")
    print("|---|---:|---:|---:|")
    for name, run in stages.items():
        run()  # warm up
        started = time.perf_counter()
        run()
        run()
        alone = time.perf_counter() - started
        threads = [threading.Thread(target=_on_one_torch_thread, args=(run,)) for _ in range(2)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        together = time.perf_counter() - started
        print(f"| {name} | {alone:.3f} s | {together:.3f} s | {alone / together:.2f} |")


def _on_one_torch_thread(run: Callable[[], None]) -> None:
    import torch

    torch.set_num_threads(1)  # a thread's own OpenMP setting, as persona's workers set it
    run()


if __name__ == "__main__":
    main()
