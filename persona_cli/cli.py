"""The `persona` command line: parses options, calls one core function per command, picks exit codes.

Exit codes: 0 every file succeeded; 1 some files failed (their rows are still written);
2 usage error (nothing processed); 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import torch
import typer
from typer.exceptions import TyperException
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from persona_cli import __version__
from persona_cli.audio import display_path, find_audio_files
from persona_cli.encoders import DEFAULT_ENCODER, ENCODER_NAMES, HALF_PRECISION, load_encoder
from persona_cli.errors import PersonaError, UsageError
from persona_cli.file_lists import FileList, read_file_list
from persona_cli.memory import keep_large_buffers_out_of_the_heap
from persona_cli.normalization import check_normalization
from persona_cli.output import OutputTarget
from persona_cli.pipeline import (
    EMBEDDING_SCHEMA,
    PREDICTION_SCHEMA,
    PredictOptions,
    embedding_rows,
    load_predictor,
    predict,
    resolve_device,
    check_normalization_groups,
    compute_threads,
    default_workers,
    until_first_error,
)
from persona_cli.sharding import Shard

EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="persona",
    help="Predict a speaker's emotion, gender and age from recorded speech, for whole folders of audio.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True)
log = logging.getLogger("persona")

PathsArg = Annotated[Optional[list[Path]], typer.Argument(help="Audio files, or folders walked recursively.", show_default=False)]
FilesFrom = Annotated[Optional[str], typer.Option("--files-from", help="Read one path per line from FILE ('-' = stdin).")]
OutputOpt = Annotated[Optional[str], typer.Option("-o", "--output", help="Output file (.csv, .parquet, .jsonl); '-' or none: CSV on stdout.")]
FormatOpt = Annotated[Optional[str], typer.Option("--format", help="csv, parquet or jsonl; overrides the extension of -o.")]
EncoderOpt = Annotated[Optional[str], typer.Option("--encoder", help=f"Speaker-embedding backend: {', '.join(ENCODER_NAMES)}.")]
SourceOpt = Annotated[Optional[str], typer.Option("--encoder-source", help="Hub id or local folder with the encoder's weights.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Audio chunks per encoder forward call.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Keep the rows already in -o FILE (or left by an interrupted run) and process only the missing files.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or log messages.")]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", min=0, help="Threads that decode and embed files in parallel, one torch thread each (default: one per core; 0: none, torch uses every core).", show_default=False)]
HalfOpt = Annotated[bool, typer.Option("--half", help=f"Run the encoder network in float16 (for GPUs; {', '.join(HALF_PRECISION)} and fusions that start with them; agrees with float32 to cosine > 0.999).")]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", help="K/N: process only the K-th of N disjoint parts of the input (split by path hash), for N parallel jobs.")]


def _version(value: bool) -> None:
    if value:
        print(f"persona {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _main(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Predict a speaker's emotion, gender and age from recorded speech, for whole folders of audio."""
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.ERROR if quiet else logging.INFO, stream=sys.stderr,
                        format="persona: %(message)s", force=True)


def _input_files(paths: list[Path] | None, files_from: str | None,
                 shard: str | None = None) -> tuple[list[Path], dict[str, str]]:
    """The audio files to process (sorted, without duplicates, this shard's part) and any speakers
    a `--files-from` CSV gives for them."""
    named: list[str] = [str(p) for p in paths or []]
    listed = FileList()  # a missing file here is an error row, not a usage error
    if files_from is not None:
        if files_from == "-" and hasattr(sys.stdin, "reconfigure"):
            sys.stdin.reconfigure(errors="surrogateescape")  # file names need not be valid UTF-8
        try:
            stream = sys.stdin if files_from == "-" else open(files_from, encoding="utf-8", errors="surrogateescape")
        except OSError as error:
            raise UsageError(f"cannot read --files-from {files_from}: {error.strerror}") from None
        with stream:
            listed = read_file_list(stream, files_from)
    given = named + listed.paths
    if not given:
        raise UsageError("no input: give audio files or folders, or --files-from FILE")
    files = find_audio_files(named, files_from=listed.paths)
    if not files:
        raise UsageError(f"no audio files found in: {' '.join(given[:3])}{' ...' if len(given) > 3 else ''}")
    if shard is not None:
        part = Shard.parse(shard)
        selected = part.select(files)
        log.info("shard %s: %d of %d files", part, len(selected), len(files))
        files = selected
    return files, listed.speakers


def _pipeline_options(workers: int | None, **settings) -> PredictOptions:
    """PredictOptions with the workers and torch's threads chosen for this machine's cores."""
    options = PredictOptions(workers=default_workers() if workers is None else workers, **settings)
    torch.set_num_threads(compute_threads(options.workers))
    keep_large_buffers_out_of_the_heap()
    return options


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=stderr,
        # a bar only makes sense on a terminal; logs and pipelines get the summary line instead
        disable=quiet or not stderr.is_terminal,
        transient=False,
    )


def _write_rows(batches: Iterator[list[dict]], target: OutputTarget, total: int, quiet: bool, label: str) -> int:
    """Stream row batches to the output with a progress bar; returns how many rows carry an error."""
    failed, done, audio_seconds = 0, 0, 0.0
    started = time.perf_counter()
    with _progress(quiet) as progress, target as writer:
        task = progress.add_task(label, total=total, rate="")
        for rows in batches:
            writer.write(rows)
            done += len(rows)
            failed += sum(1 for row in rows if row["error"])
            audio_seconds += sum(row["duration_s"] or 0.0 for row in rows)
            elapsed = max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=done, rate=f"{done / elapsed:.1f} files/s {audio_seconds / elapsed:.0f} audio-s/s")
    elapsed = max(time.perf_counter() - started, 1e-9)
    log.info("%d files, %.1f min of audio in %.1f s: %.1f files/s, %.0f audio-s/s",
             done, audio_seconds / 60, elapsed, done / elapsed, audio_seconds / elapsed)
    return failed


def _still_to_do(files: list[Path], target: OutputTarget) -> list[Path]:
    """With --resume, the files whose rows are not in the output yet."""
    if not target.done:
        return files
    remaining = [f for f in files if display_path(f) not in target.done]  # rows store display_path
    log.info("resuming: %d of %d files already done, %d to go", len(files) - len(remaining), len(files), len(remaining))
    return remaining


def _finish(failed: int, total: int, output: str | None) -> None:
    if failed:
        where = f" in {output}" if output not in (None, "-") else ""
        log.warning("%d of %d files failed (see the error column%s)", failed, total, where)
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command("predict")
def predict_command(
    paths: PathsArg = None,
    output: OutputOpt = None,
    files_from: FilesFrom = None,
    output_format: FormatOpt = None,
    encoder: EncoderOpt = None,
    encoder_source: SourceOpt = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Model checkpoint (.safetensors); default: the bundled model.")] = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 32,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first file that fails (its row and the rows before it are written); exit 1.")] = False,
    workers: WorkersOpt = None,
    shard: ShardOpt = None,
    half: HalfOpt = False,
    normalize: Annotated[Optional[str], typer.Option("--normalize", help="none, corpus (over all files of the run) or speaker (over each folder's files); default: what the model was trained with. Not none: a file's prediction depends on the others in its group.")] = None,
    engine: Annotated[str, typer.Option("--engine", help="local (this machine) or ray (a Ray cluster via Ray Data; -o names a folder for the Parquet dataset).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray started for the run).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Predict emotion, gender and age for every audio file: one output row per file."""
    _setup_logging(quiet)
    if engine not in ("local", "ray"):
        raise UsageError(f"--engine must be local or ray, not {engine!r}")
    if normalize is not None:
        check_normalization(normalize)
    if engine == "ray":
        _predict_on_ray(paths, files_from, shard, output, overwrite, resume, fail_fast, ray_address, workers, quiet,
                        PredictOptions(encoder=encoder, encoder_source=encoder_source, model=model, device=device,
                                       batch_size=batch_size, normalization=normalize, half=half))
        return
    files, speakers = _input_files(paths, files_from, shard)
    options = _pipeline_options(workers, encoder=encoder, encoder_source=encoder_source, model=model, device=device,
                                batch_size=batch_size, normalization=normalize, half=half, speakers=speakers)
    target = OutputTarget(output, output_format, PREDICTION_SCHEMA, overwrite=overwrite, resume=resume)
    encoder_impl, persona_model = load_predictor(options)
    if persona_model.metadata.normalization != "none" and resume:
        raise UsageError("--resume cannot be combined with a normalised model: every file's prediction depends on the whole run")
    check_normalization_groups(files, persona_model.metadata.normalization, speakers)
    todo = _still_to_do(files, target)
    batches = predict(todo, encoder_impl, persona_model, options)
    failed = _write_rows(until_first_error(batches) if fail_fast else batches, target, len(todo), quiet, "predict")
    if fail_fast and failed:
        log.warning("--fail-fast: stopped at the first failed file")
    _finish(failed + target.done_failed, len(files), output)


def _predict_on_ray(paths, files_from, shard, output, overwrite, resume, fail_fast, ray_address, actors, quiet,
                    options: PredictOptions) -> None:
    from persona_cli.ray_engine import check_output_folder, predict_on_ray

    if resume or fail_fast:
        raise UsageError("--engine ray does not support --resume or --fail-fast (use --shard K/N jobs to restart parts)")
    if options.normalization not in (None, "none"):
        raise UsageError("--engine ray predicts file by file; --normalize corpus/speaker needs the local engine")
    folder = check_output_folder(output, overwrite)
    files, _ = _input_files(paths, files_from, shard)
    _, persona_model = load_predictor(options)  # fail here, in one line, before starting a cluster, if they are wrong
    if persona_model.metadata.normalization != "none":
        raise UsageError("--engine ray predicts file by file; a model trained with --normalize corpus/speaker needs the local engine")
    started = time.perf_counter()
    summary = predict_on_ray(files, options, folder, address=ray_address, actors=actors or None, quiet=quiet)
    elapsed = max(time.perf_counter() - started, 1e-9)
    log.info("%d files, %.1f min of audio in %.1f s on Ray: %.0f audio-s/s; rows in %s",
             summary.files, summary.audio_seconds / 60, elapsed, summary.audio_seconds / elapsed, folder)
    _finish(summary.failed, summary.files, str(folder))


@app.command("embed")
def embed_command(
    paths: PathsArg = None,
    output: OutputOpt = None,
    files_from: FilesFrom = None,
    output_format: FormatOpt = None,
    encoder: EncoderOpt = "ge2e",
    encoder_source: SourceOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 32,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    workers: WorkersOpt = None,
    shard: ShardOpt = None,
    half: HalfOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write the speaker embeddings themselves (path, duration_s, encoder, vector, error)."""
    _setup_logging(quiet)
    options = _pipeline_options(workers, encoder=encoder, encoder_source=encoder_source, device=device, batch_size=batch_size,
                                half=half)
    files, _ = _input_files(paths, files_from, shard)
    target = OutputTarget(output, output_format, EMBEDDING_SCHEMA, overwrite=overwrite, resume=resume)
    encoder_impl = load_encoder(encoder, device=resolve_device(device), source=encoder_source, half=half)
    todo = _still_to_do(files, target)
    failed = _write_rows(embedding_rows(todo, encoder_impl, options), target, len(todo), quiet, "embed")
    _finish(failed + target.done_failed, len(files), output)


DataArg = Annotated[list[str], typer.Argument(help="Labelled corpora: folders or manifest CSVs; NAME:PATH forces a reader.", show_default=False)]
OutDirOpt = Annotated[Optional[Path], typer.Option("--out", help="Report folder: metrics.json, report.md, plots (and the trained model).")]


def _command_line() -> str:
    return " ".join(["persona", *sys.argv[1:]])


def _report(out: Path | None, report: dict, predictions, histories=(), title: str = "persona report") -> None:
    from persona_cli.metrics import markdown_table

    print(markdown_table(report))
    if out is not None:
        from persona_cli.report import write_report

        write_report(out, report, predictions, histories, command=_command_line(), title=title)


@app.command("train")
def train_command(
    data: DataArg,
    folds: Annotated[int, typer.Option("--folds", min=0, help="Cross-validation folds (0 or 1: no CV, just train).")] = 5,
    split: Annotated[str, typer.Option("--split", help="speaker: folds grouped by speaker (honest); random: the paper's protocol.")] = "speaker",
    encoder: EncoderOpt = DEFAULT_ENCODER,
    encoder_source: SourceOpt = None,
    head: Annotated[Optional[str], typer.Option("--head", help="fcn (dense layers only; the default, it scored best here) or cnn (the paper's conv + dense net).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training length (an upper bound with --paper-recipe's early stopping).")] = 20,
    paper_recipe: Annotated[bool, typer.Option("--paper-recipe", help="The paper's recipe: CNN head, lr 1e-3, early stopping and LR decay on a held-out 15 % of speakers.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed for folds, initialisation and batches.")] = 0,
    out: OutDirOpt = None,
    compare: Annotated[bool, typer.Option("--compare", help="Cross-validate every encoder x head and print a Table-1 style comparison.")] = False,
    normalize: Annotated[str, typer.Option("--normalize", help="none, corpus or speaker: z-normalise features within each corpus or each speaker's clips (see README).")] = "none",
    test_corpus: Annotated[Optional[str], typer.Option("--test-corpus", help="Cross-corpus test: train on the other corpora, score on this one (a reader name: ravdess, emodb...).")] = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 32,
    quiet: QuietOpt = False,
) -> None:
    """Train the multi-task model on labelled corpora, cross-validated; with --out, save a report and the final model."""
    from persona_cli import experiments
    from persona_cli.train import PAPER_RECIPE, SPLITS, TrainConfig, cross_validate

    _setup_logging(quiet)
    if split not in SPLITS:
        raise UsageError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    recipe = PAPER_RECIPE if paper_recipe else TrainConfig()
    head = head or recipe.head
    if head not in ("cnn", "fcn"):
        raise UsageError(f"--head must be cnn or fcn, not {head!r}")
    if folds == 1 and compare:
        raise UsageError("--compare needs --folds 2 or more")
    check_normalization(normalize)
    if test_corpus and compare:
        raise UsageError("--test-corpus and --compare do not combine; run them separately")
    options = PredictOptions(encoder=encoder, encoder_source=encoder_source, device=device, batch_size=batch_size)
    config = dataclasses.replace(recipe, head=head, epochs=epochs, seed=seed, normalization=normalize)
    if compare:
        encoders = ["mfcc", "ge2e", "xvector", "ecapa"]
        rows = experiments.compare(data, encoders, ["cnn", "fcn"], folds, split, options, config)
        table = experiments.comparison_table(rows)
        print(f"{rows[0]['report']['protocol'] if rows else ''}\n\n{table}")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "compare.md").write_text(f"`{_command_line()}`\n\n{table}\n")
            (out / "compare.json").write_text(json.dumps(rows, indent=2))
        return
    labelled = experiments.embed_corpora(data, experiments.encoder_for(encoder, options), options)
    labelled = experiments.normalize(labelled, normalize)
    if test_corpus:
        report, predictions = experiments.cross_corpus(labelled, test_corpus, config)
        report["normalization"] = normalize
        _report(out, report, predictions, title=f"persona train: {encoder} + {head}, tested on {test_corpus}")
        return
    summary = {**experiments.data_summary(labelled), "recipe": dataclasses.asdict(config), "command": _command_line()}
    if folds >= 2:
        result = cross_validate(labelled.features, labelled.clips, encoder, folds, split, config)
        _report(out, result.report, experiments.predictions_frame(labelled.clips, result.predictions),
                result.histories, title=f"persona train: {encoder} + {head}")
        summary["cross_validation"] = experiments.headline_figures(result.report)
    if out is not None:
        path = experiments.write_model(experiments.train_final_model(labelled, config, summary), out)
        log.info("final model (trained on all %d clips) saved to %s", len(labelled.clips), path)


@app.command("eval")
def eval_command(
    data: DataArg,
    model: Annotated[Optional[str], typer.Option("--model", help="Model checkpoint; default: the bundled model.")] = None,
    encoder_source: SourceOpt = None,
    out: OutDirOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 32,
    quiet: QuietOpt = False,
) -> None:
    """Score a trained model on labelled corpora; with --out, save metrics, plots and per-file predictions."""
    from persona_cli import experiments

    _setup_logging(quiet)
    options = PredictOptions(model=model, encoder_source=encoder_source, device=device, batch_size=batch_size)
    encoder_impl, persona_model = load_predictor(options)  # also checks the two belong together
    labelled = experiments.normalize(experiments.embed_corpora(data, encoder_impl, options),
                                     persona_model.metadata.normalization)
    report, predictions = experiments.evaluate(persona_model.to("cpu"), labelled)
    _report(out, report, predictions, title=f"persona eval: {persona_model.name}")


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Entry point: every expected failure becomes one line on stderr and an exit code, never a traceback."""
    # schedulers stop jobs with SIGTERM: treat it like Ctrl-C, so finished rows are published
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        # standalone_mode=False: click hands errors to us instead of printing its multi-line usage box
        exit_code = app(args=argv, prog_name="persona", standalone_mode=False)
    except TyperException as error:  # typer's own parsing errors: unknown option, missing value, bad type
        print(f"persona: error: {error.format_message()}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", EXIT_USAGE))
    except PersonaError as error:  # usage mistakes and unloadable models: nothing was processed
        print(f"persona: error: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except (KeyboardInterrupt, typer.Abort):  # interrupted outside a command (typer maps it to 130 inside)
        exit_code = EXIT_INTERRUPTED
    if exit_code == EXIT_INTERRUPTED:
        print("persona: interrupted; rows finished so far were written", file=sys.stderr)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)
