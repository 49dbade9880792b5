"""Where `--per segment`'s time goes, phase by phase, against `--per file` on the same recordings.

One Predictor (the bundled default, default workers) runs `predict_segments` over the recordings,
with diarization.listen and diarization.diarize timed as they are called, then `predict_files` over
the same recordings. For each phase: its wall time, the process's CPU time during it, and their ratio
(200 % is both cores busy). Start-up and model loading are outside every figure, so the ratio of the
two totals is the files' own, without the interpreter start-up that benchmarks/diarization.py's
throughput includes.

    python benchmarks/diarization.py --build-only --work /tmp/diar
    python scripts/measure_segment_phases.py /tmp/diar/audio
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from pathlib import Path

from persona_cli import diarization
from persona_cli.predictor import Predictor


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Phases:
    """Wall and CPU seconds per phase, summed over calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}

    def timed(self, name: str, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), cpu_seconds()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - wall, cpu_seconds() - cpu)

        return wrapper

    def add(self, name: str, wall: float, cpu: float) -> None:
        totals = self.seconds.setdefault(name, [0.0, 0.0])
        totals[0] += wall
        totals[1] += cpu

    def row(self, name: str) -> str:
        wall, cpu = self.seconds[name]
        return f"| {name} | {wall:.2f} s | {cpu:.2f} s | {100 * cpu / wall:.0f} % |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", type=Path, help="a folder of recordings (benchmarks/diarization.py's DIR/audio)")
    args = parser.parse_args()
    files = sorted(path for path in args.audio.iterdir() if path.is_file())
    phases = Phases()
    diarization.listen = phases.timed("listening pass (diarization.listen)", diarization.listen)
    diarization.diarize = phases.timed("clustering (diarization.diarize)", diarization.diarize)
    predictor = Predictor()

    wall, cpu = time.perf_counter(), cpu_seconds()
    segments = sum(1 for _ in predictor.predict_segments(files))
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    listened = [sum(values) for values in zip(*phases.seconds.values())]
    phases.add("segment pass (the rest)", wall - listened[0], cpu - listened[1])
    phases.add("--per segment, all", wall, cpu)

    wall, cpu = time.perf_counter(), cpu_seconds()
    sum(1 for _ in predictor.predict_files(files))
    phases.add("--per file", time.perf_counter() - wall, cpu_seconds() - cpu)

    print(f"{len(files)} recordings, {segments} segments\n")
    print("| phase | wall | CPU | CPU / wall |")
    print("|---|---|---|---|")
    for name in phases.seconds:
        print(phases.row(name))
    per_segment, per_file = phases.seconds["--per segment, all"][0], phases.seconds["--per file"][0]
    print(f"\n--per segment's throughput over --per file's: {per_file / per_segment:.2f}")


if __name__ == "__main__":
    main()
