"""`persona predict --engine ray`: the same pipeline spread over a Ray cluster with Ray Data.

The file list becomes a Ray dataset; `map_batches` hands batches of paths to a pool of actors, each
holding one encoder and one model (loaded once per actor, not once per batch) and running the
ordinary single-machine `predict()` on its batch; the rows are written as a Parquet dataset, one
file per block, with the same schema as a local run's output. The rows are the same as a local run's
(rows come out grouped by block, not in input order; sort by `path` to compare).

Ray is an optional extra (`pip install 'persona-cli[ray]'`) and is imported only here. Every node
needs persona installed and must see the audio at the same paths. Without `--ray-address` (or the
RAY_ADDRESS environment variable) a local Ray instance is started for the run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pa_dataset

from persona_cli.errors import UsageError
from persona_cli.options import PredictOptions
from persona_cli.predictor import Predictor
from persona_cli.results import PREDICTION_SCHEMA

log = logging.getLogger("persona")


@dataclass
class RayRunSummary:
    files: int
    failed: int
    audio_seconds: float
    output: Path


class PredictActor:
    """One Ray actor: loads the encoder and model once, then predicts batch after batch of paths."""

    def __init__(self, options: PredictOptions):
        import torch

        # the actor is the unit of parallelism here, so inside it files are embedded in one thread
        self.predictor = Predictor.from_options(dataclasses.replace(options, workers=0))
        torch.set_num_threads(1)  # each actor reserves one CPU (num_cpus=1 below)

    def __call__(self, paths: pa.Table) -> pa.Table:
        files = [Path(os.fsdecode(raw)) for raw in paths.column("path_bytes").to_pylist()]
        rows = [prediction.row() for prediction in self.predictor.predict_files(files)]
        return pa.Table.from_pylist(rows, schema=PREDICTION_SCHEMA)


def run_on_ray(
    files: Sequence[Path],
    output: str | None,
    options: PredictOptions,
    *,
    address: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> RayRunSummary:
    """`persona predict --engine ray`: check everything that can be wrong in one line before a
    cluster starts, then predict every file into the folder `output`."""
    if options.normalization not in (None, "none"):
        raise UsageError("--engine ray predicts file by file; --normalize corpus/speaker needs the local engine")
    # build the predictor here once, so wrong settings fail in one line before a cluster starts (and
    # before --overwrite empties the output folder); the actors load their own
    predictor = Predictor.from_options(dataclasses.replace(options, workers=0))
    if predictor.normalization != "none":
        raise UsageError(
            "--engine ray predicts file by file; a model trained with --normalize corpus/speaker needs the local engine"
        )
    del predictor  # its encoder may hold GPU memory the actors need
    folder = check_output_folder(output, overwrite)
    started = time.perf_counter()
    summary = predict_on_ray(files, options, folder, address=address, actors=options.workers or None, quiet=quiet)
    elapsed = max(time.perf_counter() - started, 1e-9)
    log.info(
        "%d files, %.1f min of audio in %.1f s on Ray: %.0f audio-s/s; rows in %s",
        summary.files,
        summary.audio_seconds / 60,
        elapsed,
        summary.audio_seconds / elapsed,
        folder,
    )
    return summary


def check_output_folder(output: str | None, overwrite: bool) -> Path:
    """The folder a Ray run writes its Parquet dataset into; refused if it holds anything, unless
    --overwrite."""
    if output in (None, "-"):
        raise UsageError("--engine ray writes a Parquet dataset: give -o FOLDER")
    folder = Path(output)
    if folder.suffix.lower() in (".csv", ".jsonl", ".json"):
        raise UsageError(f"--engine ray writes a Parquet dataset into a folder, not {folder.suffix} (-o FOLDER)")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"-o {output}: exists and is not a folder (--engine ray writes a folder of Parquet files)")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise UsageError(f"-o {output}: folder is not empty (use --overwrite to replace it)")
        shutil.rmtree(folder)
    return folder


def predict_on_ray(
    files: Sequence[Path],
    options: PredictOptions,
    output: Path,
    *,
    address: str | None = None,
    actors: int | None = None,
    quiet: bool = False,
) -> RayRunSummary:
    """Predict every file on a Ray cluster and write the rows to `output` as a Parquet dataset."""
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'persona-cli[ray]'") from None

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=not quiet,
            logging_level=logging.ERROR if quiet else logging.WARNING,
        )
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = not quiet
        context.print_on_execution_start = not quiet
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if options.device != "cpu" else 0
        pool_size = actors or (gpus if gpus else max(1, int(resources.get("CPU", 1))))
        log.info("ray: %d actors over %s CPUs and %d GPUs", pool_size, resources.get("CPU", 0), gpus)
        items = [{"path_bytes": os.fsencode(path)} for path in files]
        dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 4 * pool_size)))
        rows = dataset.map_batches(
            PredictActor,
            fn_constructor_kwargs={"options": options},
            batch_size=options.batch_size,
            batch_format="pyarrow",
            concurrency=pool_size,
            num_cpus=1,
            num_gpus=1 if gpus else 0,
        )
        output.mkdir(parents=True, exist_ok=True)
        rows.write_parquet(str(output))
    finally:
        if started_here:
            ray.shutdown()
    return summarize_output(output, len(files))


def summarize_output(output: Path, files: int) -> RayRunSummary:
    table = pa_dataset.dataset(output, format="parquet", schema=PREDICTION_SCHEMA).to_table(
        columns=["duration_s", "error"]
    )
    errors = table.column("error").to_pylist()
    durations = table.column("duration_s").to_pylist()
    seconds = sum(d for d, e in zip(durations, errors) if e is None and d)
    return RayRunSummary(files=files, failed=sum(e is not None for e in errors), audio_seconds=seconds, output=output)


__all__ = ["PredictActor", "RayRunSummary", "check_output_folder", "predict_on_ray", "run_on_ray"]
