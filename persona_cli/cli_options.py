"""The command line's options and arguments, declared once and shared by the commands (cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from persona_cli import __version__
from persona_cli.encoders import ENCODER_NAMES, HALF_PRECISION
from persona_cli.options import Engine, Head, Normalization, Split

PathsArg = Annotated[
    list[Path] | None, typer.Argument(help="Audio files, or folders walked recursively.", show_default=False)
]
FilesFrom = Annotated[str | None, typer.Option("--files-from", help="Read one path per line from FILE ('-' = stdin).")]
OutputOpt = Annotated[
    str | None, typer.Option("-o", "--output", help="Output file (.csv, .parquet, .jsonl); '-' or none: CSV on stdout.")
]
FormatOpt = Annotated[
    str | None, typer.Option("--format", help="csv, parquet or jsonl; overrides the extension of -o.")
]
#: --encoder's help: the registered names, and the open family of Hugging Face models (no square
#: brackets: the help is rich markup)
ENCODER_HELP = (
    f"Speaker-embedding backend: {', '.join(ENCODER_NAMES)}; or hf:ID_OR_DIR, a Hugging Face speech model "
    "(wav2vec 2.0, HuBERT, WavLM) from a Hub id or local folder: mean+std of its middle hidden state, or of "
    "hidden state N with hf:ID_OR_DIR@N (needs persona-cli's hf extra, transformers). Fuse any of them with '+'."
)
EncoderOpt = Annotated[str | None, typer.Option("--encoder", help=ENCODER_HELP)]
SourceOpt = Annotated[
    str | None, typer.Option("--encoder-source", help="Hub id or local folder with the encoder's weights.")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Audio chunks per encoder forward call.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Keep the rows already in -o FILE (or left by an interrupted run) and process only the missing files.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or log messages.")]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=0,
        help="Threads that decode and embed files in parallel, one torch thread each (default: one per core; 0: none, torch uses every core).",
        show_default=False,
    ),
]
HalfOpt = Annotated[
    bool,
    typer.Option(
        "--half",
        help=f"Run the encoder network in float16 (for GPUs; {', '.join(HALF_PRECISION)} and fusions that start with them).",
    ),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="K/N: process only the K-th of N disjoint parts of the input (split by path hash), for N parallel jobs.",
    ),
]
DataArg = Annotated[
    list[str],
    typer.Argument(help="Labelled corpora: folders or manifest CSVs; NAME:PATH forces a reader.", show_default=False),
]
OutDirOpt = Annotated[
    Path | None, typer.Option("--out", help="Report folder: metrics.json, report.md, plots (and the trained model).")
]
OverwriteDirOpt = Annotated[
    bool,
    typer.Option("--overwrite", help="Write into a non-empty --out folder, replacing the report (and model) there."),
]
ModelNameOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="The trained model's name, shown in the model column of its predictions (default: the --out folder's name).",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Model checkpoint (.safetensors); default: the bundled model.")
]
FailFastOpt = Annotated[
    bool,
    typer.Option(
        "--fail-fast", help="Stop at the first file that fails (its row and the rows before it are written); exit 1."
    ),
]
PredictNormalizeOpt = Annotated[
    Normalization | None,
    typer.Option(
        "--normalize",
        help="corpus (over all files of the run) or speaker (over each folder's files); default: what the model was trained with. Not none: a file's prediction depends on the others in its group.",
        show_default=False,
    ),
]
EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="local: this machine; ray: a Ray cluster via Ray Data (-o names a folder for the Parquet dataset).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray started for the run)."
    ),
]
FoldsOpt = Annotated[int, typer.Option("--folds", min=0, help="Cross-validation folds (0 or 1: no CV, just train).")]
SplitOpt = Annotated[
    Split,
    typer.Option(
        "--split",
        help="speaker: folds grouped by speaker (honest); corpus: leave one corpus out in turn (recordings "
        "unlike the training ones; --folds is ignored); random: the paper's protocol.",
    ),
]
NamedEncoderOpt = Annotated[str, typer.Option("--encoder", help=ENCODER_HELP)]
HeadOpt = Annotated[
    Head | None,
    typer.Option(
        "--head", help="fcn (dense layers only; the default) or cnn (the paper's conv + dense net).", show_default=False
    ),
]
EpochsOpt = Annotated[
    int, typer.Option("--epochs", min=1, help="Training length (an upper bound with --paper-recipe's early stopping).")
]
PaperRecipeOpt = Annotated[
    bool,
    typer.Option(
        "--paper-recipe",
        help="The paper's recipe: CNN head, lr 1e-3, early stopping and LR decay on a held-out 15 % of speakers.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for folds, initialisation and batches.")]
CompareOpt = Annotated[
    bool, typer.Option("--compare", help="Cross-validate every encoder x head and print a Table-1 style comparison.")
]
TrainNormalizeOpt = Annotated[
    Normalization,
    typer.Option(
        "--normalize",
        help="none, corpus or speaker: z-normalise features within each corpus or each speaker's clips (see README).",
    ),
]
TestCorpusOpt = Annotated[
    str | None,
    typer.Option(
        "--test-corpus",
        help="Cross-corpus test: train on the other corpora, score on this one (a reader name: ravdess, emodb...).",
    ),
]


def _show_version(value: bool) -> None:
    if value:
        print(f"persona {__version__}")
        raise typer.Exit()


VersionOpt = Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version.")]
WeakNeutralOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--weak-neutral",
        help="A corpus (reader name: librispeech, commonvoice...) whose clips without an emotion label train "
        "as neutral: read speech. Repeat for several.",
        show_default=False,
    ),
]
