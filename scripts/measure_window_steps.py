"""Can `--per segment`'s listening pass embed fewer windows? Its 1.6 s windows start every 0.8 s, so
each frame of speech goes through the GE2E LSTM twice; a longer step embeds fewer of them. For each
step (and the clustering's piece length, which holds three windows at 0.8 s), DER with the
benchmark's collars, the speaker count and the listening's time, as scripts/measure_half_windows.py
prints them (one process, `--workers 0`).

    python benchmarks/diarization.py --build-only --work /tmp/diar24
    python scripts/measure_window_steps.py --work /tmp/diar24
    python scripts/measure_window_steps.py --work /tmp/diar24 --variants 0.8:2.4 1.6:4.8
"""

from __future__ import annotations

import argparse
from pathlib import Path

from measure_half_windows import TABLE_HEAD, measure, table_row

from persona_cli import diarization
from persona_cli.audio import SAMPLE_RATE
from persona_cli.encoders.ge2e import GE2EEncoder

#: step:piece seconds; 0.8:2.4 is the listening as it is
VARIANTS = ("0.8:2.4", "1.2:2.4", "1.2:3.6", "1.6:2.4", "1.6:4.8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a work folder of benchmarks/diarization.py")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), help="STEP:PIECE seconds")
    args = parser.parse_args()
    encoder = GE2EEncoder()
    as_it_is = diarization.WINDOW_STEP_SAMPLES, diarization.PIECE_SECONDS
    print(TABLE_HEAD)
    try:
        for variant in args.variants:
            step, piece = (float(part) for part in variant.split(":"))
            # both are read when each chunk is listened to and each recording clustered
            diarization.WINDOW_STEP_SAMPLES, diarization.PIECE_SECONDS = round(step * SAMPLE_RATE), piece
            row = table_row(f"windows every {step:g} s, pieces of {piece:g} s", *measure(args.work, encoder))
            print(row, flush=True)
    finally:
        diarization.WINDOW_STEP_SAMPLES, diarization.PIECE_SECONDS = as_it_is


if __name__ == "__main__":
    main()
