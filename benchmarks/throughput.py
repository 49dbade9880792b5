"""Throughput of `persona predict` against a naive one-file-at-a-time loop, printed as JSON.

    python benchmarks/throughput.py                      # the default model on Common Voice MP3 clips in ../shared/data
    python benchmarks/throughput.py --encoder ge2e       # the fast bundled model
    python benchmarks/throughput.py DIR... --limit 500   # any audio
    python benchmarks/throughput.py --encoder xvector --random-weights   # full-size x-vector, random weights

Both sides run as their own process on the same files, one after the other, so each has the
machine to itself and its peak RSS is its own (from wait4). wait4 reports the largest single
process, which undercounts a run with `--processes` (worker processes forked from persona), so
`peak_tree_pss_mb` also samples the summed proportional set size of the whole process tree every
0.1 s (pages that forks share counted once):

- `persona`: the real command, `persona predict --files-from LIST -o OUT.parquet`, timed from
  process start to exit, so interpreter start-up, model loading, decoding, resampling, embedding,
  the head and writing Parquet are all inside its audio-seconds per wall-second.
- `naive`: for the GE2E encoders, by default (`--naive resemblyzer`), the loop a user would write
  with resemblyzer alone, per file: decode with soundfile, resample with soxr, `preprocess_wav`,
  `VoiceEncoder.embed_utterance`. It computes less than persona (no layer statistics, prosody or
  head), so the ratio is persona's speed against the plain speaker embedding's.
  With `--naive features` (and for every other encoder), the loop computes the same features as
  persona, one file at a time: decode with soundfile, resample with soxr, embed that file alone
  with the library's single-file call
  (resemblyzer's `preprocess_wav` + `VoiceEncoder.embed_utterance` for ge2e, and for ge2e-layers the
  same preprocessing with resemblyzer's LSTM run on the file's partials directly; SpeechBrain's
  `encode_batch` on a batch of one for xvector/ecapa; persona's own encoder on one wave for the
  feature sets, prosody and mfcc, that have no library of their own; each part in turn for a fusion
  such as the default ge2e-layers+prosody+mfcc), then run the persona head on the vector.
  Its rate is timed over that loop only, after imports and model loading, which flatters the
  baseline a little; the ratio is therefore a lower bound.

Timings vary run to run, and on a shared machine by more than that from one minute to the next.
--repeat N runs N rounds, each a persona run followed at once by a naive run, and reports the
median of the rounds' ratios (`speedup`, each round's in `speedup_per_round`) beside each side's
median run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "commonvoice"
sys.path.insert(0, str(REPO))
from persona_cli.encoders import DEFAULT_ENCODER  # noqa: E402 - light: the registry imports encoders lazily


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", type=Path, help=f"audio files or folders (default: {DEFAULT_CORPUS})")
    parser.add_argument("--limit", type=int, help="use only the first N files (sorted by path)")
    parser.add_argument(
        "--encoder",
        default=DEFAULT_ENCODER,
        help=f"{DEFAULT_ENCODER} (default, the bundled model's), ge2e, xvector, ecapa, mfcc or any A+B",
    )
    parser.add_argument("--encoder-source", help="folder with the encoder's weights (xvector/ecapa)")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="xvector/ecapa: build a full-size random-weight model folder (speed only)",
    )
    parser.add_argument("--workers", type=int, help="passed to persona predict --workers")
    parser.add_argument("--processes", action="store_true", help="passed to persona predict --processes")
    parser.add_argument(
        "--naive-limit", type=int, help="time the naive loop on only the first N files (it is slow); default: all"
    )
    parser.add_argument(
        "--naive",
        choices=("resemblyzer", "features"),
        help="the baseline loop: resemblyzer's embed_utterance alone (default for ge2e encoders), "
        "or the same features as persona one file at a time (default otherwise)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of a persona run and a naive run; the median round's ratio is reported",
    )
    parser.add_argument("--skip-naive", action="store_true", help="only time persona predict")
    parser.add_argument("--naive-child", nargs=3, metavar=("LIST", "MODEL", "SOURCE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.naive is None:
        args.naive = "resemblyzer" if args.encoder.startswith("ge2e") else "features"
    if args.naive_child:
        return _naive_child(*args.naive_child, encoder_name=args.encoder, loop=args.naive)

    from persona_cli.audio import find_audio_files

    files = sorted(find_audio_files(args.inputs or [DEFAULT_CORPUS]), key=str)[: args.limit]
    if not files:
        parser.error("no audio files found")
    with tempfile.TemporaryDirectory(prefix="persona-bench-") as tmp:
        tmp_dir = Path(tmp)
        source = args.encoder_source
        if args.random_weights:
            source = str(_random_weight_folder(tmp_dir / "encoder", args.encoder))
        model = _model_for(args.encoder, source, tmp_dir)
        file_list = tmp_dir / "files.txt"
        file_list.write_text("".join(f"{f}\n" for f in files))

        naive_list = tmp_dir / "naive.txt"
        naive_list.write_text("".join(f"{f}\n" for f in files[: args.naive_limit]))
        # Rounds: a persona run, then the loop right after it. This machine's speed can change
        # within a minute, so each ratio compares two runs that saw the same spell.
        runs, loops = [], []
        for i in range(args.repeat):
            runs.append(_run_persona(file_list, tmp_dir / f"out{i}.parquet", args, model, source))
            if not args.skip_naive:
                loops.append(_run_naive(naive_list, args, model, source))
        persona = {**_median(runs), "runs_audio_s_per_s": [run["audio_s_per_s"] for run in runs]}
        result = {
            "corpus": [str(p) for p in (args.inputs or [DEFAULT_CORPUS])],
            "files": len(files),
            "encoder": args.encoder + (" (random weights)" if args.random_weights else ""),
            "cpu_cores": len(os.sched_getaffinity(0)),
            "persona": persona,
        }
        if loops:
            ratios = [round(run["audio_s_per_s"] / loop["audio_s_per_s"], 2) for run, loop in zip(runs, loops)]
            result["naive_loop"] = args.naive
            result["naive"] = {**_median(loops), "runs_audio_s_per_s": [loop["audio_s_per_s"] for loop in loops]}
            result["speedup"] = sorted(ratios)[len(ratios) // 2]
            result["speedup_per_round"] = ratios
    print(json.dumps(result, indent=2))
    return 0


def _run_persona(file_list: Path, out: Path, args, model: Path | None, source: str | None) -> dict:
    import pyarrow.parquet as pq

    command = [
        sys.executable,
        "-m",
        "persona_cli",
        "predict",
        "--files-from",
        str(file_list),
        "-o",
        str(out),
        "--quiet",
        "--encoder",
        args.encoder,
    ]
    if model:
        command += ["--model", str(model)]
    if source:
        command += ["--encoder-source", source]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    if getattr(args, "processes", False):
        command.append("--processes")
    per = getattr(args, "per", "file")
    if per != "file":
        command += ["--per", per]
    run = _run_child(command, parse_json=False)
    if per == "file":
        table = pq.read_table(out, columns=["duration_s", "error"]).to_pydict()
        audio_s = sum(d for d, e in zip(table["duration_s"], table["error"]) if e is None and d)
    else:  # rows per speaker or segment carry no file duration: take it from the headers
        from persona_cli.audio import audio_info

        table = pq.read_table(out, columns=["path", "error"]).to_pydict()
        audio_s = sum(audio_info(p).duration_s for p in set(file_list.read_text().split("\n")) - {""})
    return {
        "audio_s": round(audio_s, 1),
        "wall_s": run["wall_s"],
        "audio_s_per_s": round(audio_s / run["wall_s"], 1),
        "files_per_s": round(len(table["error"]) / run["wall_s"], 1),
        "failed": sum(e is not None for e in table["error"]),
        "peak_rss_mb": run["peak_rss_mb"],
        "peak_tree_pss_mb": run["peak_tree_pss_mb"],
        "exit_code": run["exit_code"],
    }


def _median(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda run: run["audio_s_per_s"])[len(runs) // 2]


def _run_naive(naive_list: Path, args, model: Path | None, source: str | None) -> dict:
    command = [sys.executable, __file__, "--encoder", args.encoder, "--naive", args.naive]
    return _run_child(command + ["--naive-child", str(naive_list), str(model or ""), source or ""])


def _run_child(command: list[str], parse_json: bool = True) -> dict:
    """Run one process; its wall time, peak RSS (from wait4), the peak summed PSS of its process
    tree and, optionally, the JSON it prints."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=REPO)
    sampler = _TreeMemory(process.pid)
    sampler.start()
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    sampler.stop()
    exit_code = os.waitstatus_to_exitcode(status)
    process.returncode = exit_code
    if exit_code not in (0, 1):  # 1: some files failed, which the rows report
        raise SystemExit(f"{command[:4]} failed with exit code {exit_code}")
    measured = {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "peak_tree_pss_mb": round(sampler.peak_kb / 1024),
        "exit_code": exit_code,
    }
    if parse_json:
        measured = {**json.loads(stdout), **measured}
    return measured


class _TreeMemory(threading.Thread):
    """Samples the summed PSS of a process and all its descendants every 0.1 s (Linux /proc)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(pid) for pid in _process_tree(self.pid)))

    def stop(self) -> None:
        self.done.set()
        self.join()


def _process_tree(pid: int) -> list[int]:
    tree = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            tree += [p for child in children for p in _process_tree(int(child))]
    except OSError:  # gone between listing and reading
        pass
    return tree


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _naive_child(file_list: str, model_path: str, source: str, encoder_name: str, loop: str) -> int:
    """The baseline loop; prints its own timing as JSON (wall_s and RSS are added by the parent)."""
    import soundfile as sf
    import soxr

    from persona_cli.model import bundled_model_path, load_model

    if loop == "resemblyzer":
        embed_one, model = _single_file_embedder("ge2e", ""), None
    else:
        embed_one = _single_file_embedder(encoder_name, source)
        model = load_model(model_path or bundled_model_path(encoder_name))
    paths = Path(file_list).read_text().splitlines()
    audio_s, failed = 0.0, 0
    started = time.perf_counter()
    for path in paths:
        try:
            wave, rate = sf.read(path, dtype="float32", always_2d=True)
            wave = soxr.resample(wave.mean(axis=1), rate, 16_000)
            vector = embed_one(wave)
        except Exception:  # noqa: BLE001 - the baseline only needs to count what it could not do
            failed += 1
            continue
        if model is not None:
            model.predict(vector[None, :])
        audio_s += len(wave) / 16_000
    loop_s = time.perf_counter() - started
    print(
        json.dumps(
            {
                "files": len(paths),
                "failed": failed,
                "audio_s": round(audio_s, 1),
                "loop_s": round(loop_s, 2),
                "audio_s_per_s": round(audio_s / loop_s, 1),
                "files_per_s": round(len(paths) / loop_s, 1),
            }
        )
    )
    return 0


def _single_file_embedder(encoder_name: str, source: str):
    """The encoder library's own one-file call, as a function of a 16 kHz wave (for a fusion "A+B",
    each part's call on the same wave, concatenated)."""
    if "+" in encoder_name:
        import numpy as np

        first, *others = encoder_name.split("+")
        parts = [_single_file_embedder(first, source), *(_single_file_embedder(part, "") for part in others)]
        return lambda wave: np.concatenate([embed(wave) for embed in parts])
    if encoder_name == "ge2e":
        from resemblyzer import VoiceEncoder, preprocess_wav

        voice_encoder = VoiceEncoder("cpu", verbose=False)
        return lambda wave: voice_encoder.embed_utterance(preprocess_wav(wave, source_sr=16_000))
    if encoder_name == "ge2e-layers":  # resemblyzer has no call for it: its parts, run by hand
        sys.path.insert(0, str(REPO / "tests"))
        from resemblyzer_reference import resemblyzer_layers_embedder

        return resemblyzer_layers_embedder()
    if encoder_name in ("xvector", "ecapa"):
        import torch

        from persona_cli.encoders import load_encoder

        classifier = load_encoder(encoder_name, device="cpu", source=source or None).classifier

        def embed(wave):
            with torch.inference_mode():
                return classifier.encode_batch(torch.from_numpy(wave)[None, :]).reshape(-1).numpy()

        return embed
    from persona_cli.encoders import load_encoder

    encoder = load_encoder(encoder_name)
    return lambda wave: encoder.embed([wave])[0]


def _random_weight_folder(folder: Path, encoder_name: str) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from speechbrain_folders import FULL, build_model_folder

    return build_model_folder(folder, encoder_name, FULL[encoder_name])


def _model_for(encoder_name: str, source: str | None, tmp_dir: Path) -> Path | None:
    """The bundled model for the encoder, or a freshly initialised one (the head's cost does not
    depend on its weights)."""
    from persona_cli.encoders import load_encoder
    from persona_cli.model import ModelMetadata, PersonaModel, build_network, bundled_model_path

    if bundled_model_path(encoder_name).exists():
        return None
    encoder = load_encoder(encoder_name, device="cpu", source=source)
    metadata = ModelMetadata(encoder=encoder_name, encoder_dim=encoder.dim, head="fcn")
    return PersonaModel(build_network(metadata), metadata).save(tmp_dir / f"untrained-{encoder_name}.safetensors")


if __name__ == "__main__":
    sys.exit(main())
