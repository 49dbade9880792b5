"""The report folder: every file written, readable, and nothing drawn for a task that was not scored."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from persona_cli.labels import EMOTIONS, GENDERS
from persona_cli.report import (
    AGE_SCATTER_FILE,
    CONFUSION_FILE,
    GENDER_CONFUSION_FILE,
    LEARNING_CURVES_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    write_report,
)
from persona_cli.training import TrainingHistory

PROTOCOL = "speaker-grouped 2-fold CV"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _emotion(accuracy: float = 0.5, uar: float = 0.45) -> dict:
    confusion = (np.eye(6, dtype=int) * 8 + 1).tolist()  # 8 right, 1 in each other column per row
    return {
        "accuracy": accuracy,
        "uar": uar,
        "macro_f1": 0.44,
        "n": 78,
        "confusion": confusion,
        "labels": list(EMOTIONS),
    }


def _gender(accuracy: float = 0.9) -> dict:
    return {"accuracy": accuracy, "n": 40, "confusion": [[18, 2], [2, 18]], "labels": list(GENDERS)}


def _age(rmse: float = 10.5) -> dict:
    return {"rmse": rmse, "mae": 8.25, "baseline_rmse": 14.0, "baseline_mae": 12.0, "n": 30}


def _full_report() -> dict:
    return {
        "protocol": PROTOCOL,
        "overall": {"emotion": _emotion(), "gender": _gender(), "age": _age()},
        "per_corpus": {
            "crema_d": {"emotion": _emotion(0.55, 0.5), "gender": _gender(0.95)},
            "common_voice": {"gender": _gender(0.85), "age": _age()},
        },
        "folds": [
            {"emotion": _emotion(0.6, 0.55), "gender": _gender(0.92), "age": _age(9.75)},
            {"emotion": _emotion(0.4, 0.35), "gender": _gender(0.88)},
        ],
        "std": {"emotion": {"accuracy": 0.14, "uar": 0.14}, "gender": {"accuracy": 0.03}},
    }


def _predictions(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    age_true = rng.choice([25.0, 35.0, 45.0, 55.0], size=n)
    age_true[::4] = np.nan  # a clip without an age (an emotion corpus) is left out of the scatter
    return pd.DataFrame(
        {
            "path": [f"clip_{i:03d}.wav" for i in range(n)],
            "emotion_pred": rng.choice(EMOTIONS, size=n),
            "age_true": age_true,
            "age_pred": rng.normal(40, 10, size=n),
        }
    )


def _histories() -> list[TrainingHistory]:
    return [
        TrainingHistory(
            train_loss=[2.0, 1.5, 1.2, 1.0, 0.9],
            validation_loss=[2.1, 1.7, 1.5, 1.55, 1.6],
            learning_rate=[1e-3] * 5,
            best_epoch=2,
        ),
        TrainingHistory(
            train_loss=[2.2, 1.6, 1.3], validation_loss=[2.3, 1.8, 1.7], learning_rate=[1e-3] * 3, best_epoch=2
        ),
    ]


def _assert_png(path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_full_report_writes_every_file(tmp_path):
    report, predictions = _full_report(), _predictions()
    out = tmp_path / "report"  # not there yet: write_report creates it
    written = write_report(out, report, predictions, _histories(), command="persona train data --folds 2 --out report")

    names = {path.name for path in written}
    assert names == {
        METRICS_FILE,
        "report.md",
        CONFUSION_FILE,
        GENDER_CONFUSION_FILE,
        AGE_SCATTER_FILE,
        LEARNING_CURVES_FILE,
        PREDICTIONS_FILE,
    }
    assert all(path.parent == out and path.is_file() for path in written)

    assert json.loads((out / METRICS_FILE).read_text()) == report
    for name in (CONFUSION_FILE, GENDER_CONFUSION_FILE, AGE_SCATTER_FILE, LEARNING_CURVES_FILE):
        _assert_png(out / name)
    pd.testing.assert_frame_equal(pd.read_csv(out / PREDICTIONS_FILE), predictions)


def test_markdown_has_command_protocol_table_folds_and_links(tmp_path):
    write_report(
        tmp_path,
        _full_report(),
        _predictions(),
        _histories(),
        command="persona train data --folds 2 --out report",
        title="CV run",
    )
    text = (tmp_path / "report.md").read_text()

    assert text.startswith("# CV run")
    assert "```\npersona train data --folds 2 --out report\n```" in text
    assert f"Protocol: {PROTOCOL}" in text
    assert "| Corpus |" in text and "| crema_d |" in text and "| overall |" in text
    assert "50.0 ± 14.0" in text  # overall emotion accuracy with its fold spread, from the table
    assert "Fold 1: emotion acc 60.0%, UAR 55.0%; gender acc 92.0%; age RMSE 9.75 years" in text
    assert "Fold 2: emotion acc 40.0%, UAR 35.0%; gender acc 88.0%; age –" in text
    for name in (CONFUSION_FILE, AGE_SCATTER_FILE, LEARNING_CURVES_FILE):
        assert f"]({name})" in text


def test_markdown_table_comes_from_metrics(tmp_path):
    from persona_cli.metrics import markdown_table

    report = _full_report()
    write_report(tmp_path, report)
    assert markdown_table(report) in (tmp_path / "report.md").read_text()


def test_gender_only_report_draws_the_gender_confusion_only(tmp_path):
    report = {"protocol": PROTOCOL, "overall": {"gender": _gender()}, "per_corpus": {"ravdess": {"gender": _gender()}}}
    written = write_report(tmp_path, report)

    assert {path.name for path in written} == {METRICS_FILE, "report.md", GENDER_CONFUSION_FILE}
    assert [p.name for p in tmp_path.glob("*.png")] == [GENDER_CONFUSION_FILE]
    _assert_png(tmp_path / GENDER_CONFUSION_FILE)
    text = (tmp_path / "report.md").read_text()
    assert "Produced by" not in text and "## Folds" not in text
    assert f"![Gender confusion matrix (rows: true gender, normalised)]({GENDER_CONFUSION_FILE})" in text
    assert f"Protocol: {PROTOCOL}" in text


def test_no_age_scatter_when_no_clip_has_a_true_age(tmp_path):
    predictions = _predictions()
    predictions["age_true"] = np.nan
    written = write_report(tmp_path, _full_report(), predictions)
    assert AGE_SCATTER_FILE not in {path.name for path in written}
    assert (tmp_path / PREDICTIONS_FILE).is_file()


def test_predictions_without_age_columns(tmp_path):
    predictions = _predictions().drop(columns=["age_true", "age_pred"])
    written = write_report(tmp_path, _full_report(), predictions)
    assert AGE_SCATTER_FILE not in {path.name for path in written}


def test_history_without_validation_and_empty_confusion_row(tmp_path):
    report = _full_report()
    report["overall"]["emotion"]["confusion"][5] = [0] * 6  # nobody was sad: the row must not be 0/0
    history = TrainingHistory(train_loss=[1.0, 0.8], learning_rate=[1e-3] * 2, best_epoch=1)
    with np.errstate(all="raise"):
        write_report(tmp_path, report, histories=[history])
    _assert_png(tmp_path / CONFUSION_FILE)
    _assert_png(tmp_path / LEARNING_CURVES_FILE)


@pytest.mark.parametrize("module", ["matplotlib", "matplotlib.pyplot"])
def test_importing_report_does_not_import_matplotlib(module):
    import subprocess
    import sys

    code = f"import sys, persona_cli.report; assert {module!r} not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fold_lines_read_the_folds_as_cross_validation_writes_them(tmp_path):
    """cross_validate nests each fold's scores under "overall"; report.md printed '–' for all of them."""
    report = _full_report()
    report["folds"] = [
        {
            "fold": 1,
            "n_test": 40,
            "overall": {"emotion": _emotion(0.6, 0.55), "gender": _gender(0.92)},
            "per_corpus": {},
        },
        {"fold": 2, "n_test": 38, "overall": {"age": _age(9.75)}, "per_corpus": {}},
    ]
    write_report(tmp_path, report)
    text = (tmp_path / "report.md").read_text()
    assert "Fold 1: emotion acc 60.0%, UAR 55.0%; gender acc 92.0%; age –" in text
    assert "Fold 2: emotion –; gender –; age RMSE 9.75 years" in text


def test_warnings_come_first_in_the_markdown(tmp_path):
    report = {**_full_report(), "warnings": ["the model was trained on emodb: these figures are in-corpus, not a test"]}
    write_report(tmp_path, report, title="persona eval: m")
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert lines[:3] == ["# persona eval: m", "", f"> **Warning:** {report['warnings'][0]}"]


def test_learning_curve_legend_names_only_what_is_drawn(tmp_path):
    """The default recipe has no early-stopping part: no validation curve or best-epoch marker to promise."""
    from persona_cli.report import plot_learning_curves

    default = TrainingHistory(train_loss=[2.0, 1.5, 1.2], held_out_loss=[2.1, 1.8, 1.9], learning_rate=[1e-3] * 3)
    assert plot_learning_curves([default, default], tmp_path / "a.png") == [
        "fold 1",
        "fold 2",
        "train",
        "held-out test fold",
    ]
    early_stopped = TrainingHistory(train_loss=[2.0, 1.5], validation_loss=[2.1, 1.7], best_epoch=1)
    assert plot_learning_curves([early_stopped], tmp_path / "b.png") == ["train", "early-stopping part", "epoch kept"]
    _assert_png(tmp_path / "a.png")


def test_a_report_written_over_another_drops_the_plots_it_does_not_draw(tmp_path):
    write_report(tmp_path, _full_report(), _predictions(), _histories())
    assert (tmp_path / LEARNING_CURVES_FILE).is_file()
    write_report(tmp_path, {"protocol": PROTOCOL, "overall": {"gender": _gender()}, "per_corpus": {}})
    assert not (tmp_path / LEARNING_CURVES_FILE).exists() and not (tmp_path / PREDICTIONS_FILE).exists()


def test_a_non_empty_report_folder_needs_overwrite(tmp_path):
    from persona_cli.errors import UsageError
    from persona_cli.report import check_output_folder

    check_output_folder(tmp_path / "new")  # not there yet: fine
    check_output_folder(tmp_path)  # there, but empty: fine
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty; add --overwrite"):
        check_output_folder(tmp_path)
    check_output_folder(tmp_path, overwrite=True)
    with pytest.raises(UsageError, match="that is a file"):
        check_output_folder(tmp_path / "notes.txt", overwrite=True)
