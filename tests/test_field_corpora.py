"""Readers for ASED, URDU, BAVED and LibriSpeech, on generated layouts and on the real copies in ../shared/data.

Generated corpora are empty files named as the real ones are, quirks included; the real-data tests
check the counts ../shared/data/README.md documents.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from conftest import SHARED_DATA, assert_well_formed, require_shared, touch
from persona_cli.corpora import LAYOUTS, LabelledClip, detect_reader, read_corpus
from persona_cli.errors import UsageError


def speaker_sexes(clips: list[LabelledClip]) -> Counter[str | None]:
    """How many speakers of each sex, each speaker counted once."""
    return Counter({clip.speaker: clip.gender for clip in clips}.values())


# --- ASED --------------------------------------------------------------------------------------------


def test_ased_generated(tmp_path):
    root = tmp_path / "ASED_V1"
    touch(root / "01Neutral", "n1-01-01-01-09.opus", "n1-02-01-02-30.opus", "n1-01-01-01-40.opus", "readme.opus")
    touch(root / "02Fearful", "f2-01-01-02-09.opus", "f2-01-01-02-40.opus")  # 09: one file says male
    touch(root / "04Sad", "S4-04-02-01-09.opus", "s4-01-02-01-09.wav", "n2-01-01-01-09.opus")
    assert detect_reader(root) == "ased"
    assert detect_reader(root / "04Sad") == "ased"
    clips = read_corpus(str(root))
    assert_well_formed(clips, "ased")
    assert [(c.path.name, c.speaker, c.emotion, c.emotion_raw, c.gender, c.age) for c in clips] == [
        ("n1-01-01-01-09.opus", "ased:09", "neutral", "neutral", "female", None),
        ("n1-01-01-01-40.opus", "ased:40", "neutral", "neutral", None, None),  # one file each way: unknown
        ("n1-02-01-02-30.opus", "ased:30", "neutral", "neutral", "male", None),
        ("f2-01-01-02-09.opus", "ased:09", "fear", "fearful", "female", None),  # the majority wins
        ("f2-01-01-02-40.opus", "ased:40", "fear", "fearful", None, None),
        ("S4-04-02-01-09.opus", "ased:09", "sad", "sad", "female", None),  # fields read case-insensitively
        ("s4-01-02-01-09.wav", "ased:09", "sad", "sad", "female", None),
    ]  # readme.opus and n2-... (letter and number disagree) are skipped


def test_ased_real():
    root = require_shared("ased")
    clips = read_corpus(str(root))
    assert_well_formed(clips, "ased")
    assert len(clips) == 2474
    assert len({c.speaker for c in clips}) == 65
    assert speaker_sexes(clips) == {"female": 25, "male": 40}
    assert Counter(c.emotion for c in clips) == {"neutral": 522, "fear": 510, "happy": 486, "anger": 486, "sad": 470}
    assert all(c.age is None for c in clips)
    by_name = {c.path.name: c for c in clips}
    assert (by_name["S4-04-02-01-29.opus"].speaker, by_name["S4-04-02-01-29.opus"].emotion) == ("ased:29", "sad")
    for name in ["f2-01-01-02-15", "f2-02-01-02-25", "f2-07-02-02-21", "s4-01-02-02-09", "s4-04-01-02-23"]:
        assert by_name[f"{name}.opus"].gender == "female"  # the one file that says male is outvoted


# --- URDU --------------------------------------------------------------------------------------------


def test_urdu_generated(tmp_path):
    root = tmp_path / "URDU-Dataset"
    touch(root / "Angry", "SM1_F10_A010.flac", "SM3_F1_A01.flac")
    touch(root / "Happy", "SF3_F2_H0100.wav", "SM3_F1_H05.opus", "Thumbs.db")
    touch(root / "Sad", "SM24_F7_S099.flac", "SM24_F7_X099.flac")
    assert detect_reader(root) == "urdu"
    assert detect_reader(root / "Sad") == "urdu"
    clips = read_corpus(str(root))
    assert_well_formed(clips, "urdu")
    assert [(c.path.name, c.speaker, c.emotion, c.emotion_raw, c.gender, c.age) for c in clips] == [
        ("SM1_F10_A010.flac", "urdu:SM1", "anger", "angry", "male", None),
        ("SM3_F1_A01.flac", "urdu:SM3", "anger", "angry", "male", None),
        ("SF3_F2_H0100.wav", "urdu:SF3", "happy", "happy", "female", None),
        ("SM3_F1_H05.opus", "urdu:SM3", "happy", "happy", "male", None),  # the label is the speaker
        ("SM24_F7_S099.flac", "urdu:SM24", "sad", "sad", "male", None),
    ]


def test_urdu_real():
    root = require_shared("urdu")
    clips = read_corpus(str(root))
    assert_well_formed(clips, "urdu")
    assert len(clips) == 400
    assert len({c.speaker for c in clips}) == 29
    assert speaker_sexes(clips) == {"male": 18, "female": 11}
    assert Counter(c.emotion for c in clips) == {"anger": 100, "happy": 100, "neutral": 100, "sad": 100}
    assert all(c.path.parent.name.lower() == c.emotion_raw for c in clips)  # the folder says the same
    assert all(c.age is None for c in clips)
    assert {c.emotion for c in clips if c.speaker == "urdu:SM3"} == {"anger", "happy", "neutral"}


# --- BAVED -------------------------------------------------------------------------------------------


def write_speakers_info(root: Path, speakers: dict[str, tuple[str, int]]) -> None:
    table = {speaker: {"age": age, "gender": sex} for speaker, (sex, age) in speakers.items()}
    (root / "speakers_info.json").write_text(json.dumps(table, indent=4))


def test_baved_generated(tmp_path):
    root = tmp_path / "BAVED"
    touch(root / "0", "10-f-20-0-1-0.opus", "49-m-23-6-1-201.opus")  # 49's name says word 6, folder 0
    touch(root / "1", "10-f-20-1-0-3.opus", "46-m-20-1-2-7.opus", "53-m-20-1-2-7.opus", "10-f-20-1-3-4.opus")
    write_speakers_info(root, {"10": ("f", 20), "46": ("m", 20), "49": ("m", 23), "52": ("m", 22), "53": ("m", 20)})
    assert detect_reader(root) == "baved"
    assert detect_reader(root / "1") == "baved"
    clips = read_corpus(str(root))
    assert_well_formed(clips, "baved")
    assert [(c.path.name, c.speaker, c.emotion, c.emotion_raw, c.gender, c.age) for c in clips] == [
        ("10-f-20-0-1-0.opus", "baved:10", "neutral", "level 1", "female", 20.0),  # the everyday voice
        ("49-m-23-6-1-201.opus", "baved:49", "neutral", "level 1", "male", 23.0),
        ("10-f-20-1-0-3.opus", "baved:10", None, "level 0", "female", 20.0),  # an intensity, not an emotion
        ("46-m-20-1-2-7.opus", "baved:46", None, "level 2", "male", 20.0),
        ("53-m-20-1-2-7.opus", "baved:46", None, "level 2", "male", 20.0),  # 53 is 46 entered twice
    ]  # level 3 does not exist: skipped


def test_baved_names_are_cross_checked_against_speakers_info(tmp_path, caplog):
    touch(tmp_path / "2", "7-m-22-2-1-5.opus", "8-f-19-2-1-6.opus", "9-m-30-2-1-9.opus")
    write_speakers_info(tmp_path, {"7": ("m", 22), "8": ("m", 19)})  # 8 disagrees, 9 is not listed
    with caplog.at_level(logging.WARNING, logger="persona"):
        clips = read_corpus(str(tmp_path))
    assert [(c.speaker, c.gender, c.age) for c in clips] == [
        ("baved:7", "male", 22.0),
        ("baved:8", "female", 19.0),  # the file name is kept, and the disagreement named
        ("baved:9", "male", 30.0),
    ]
    assert "disagree" in caplog.text and "speakers 8;" in caplog.text


def test_baved_real():
    root = require_shared("baved")
    clips = read_corpus(str(root))
    assert_well_formed(clips, "baved")
    assert len(clips) == 1935
    speakers = {c.speaker for c in clips}
    assert len(speakers) == 59 and "baved:53" not in speakers  # 60 speaker ids, 53 read as 46
    assert sum(c.speaker == "baved:46" for c in clips) == 42  # 21 clips each under 46 and 53
    assert speaker_sexes(clips) == {"male": 43, "female": 16}
    assert Counter(c.emotion_raw for c in clips) == {"level 0": 585, "level 1": 672, "level 2": 678}
    assert all((c.emotion == "neutral") == (c.emotion_raw == "level 1") for c in clips)
    assert {c.emotion for c in clips} == {"neutral", None}
    info = json.loads((root / "speakers_info.json").read_text())
    for clip in clips:
        entry = info[clip.path.name.split("-")[0]]
        assert (clip.gender, clip.age) == ({"m": "male", "f": "female"}[entry["gender"]], float(entry["age"]))
    assert min(c.age for c in clips) == 5 and max(c.age for c in clips) == 41


# --- LibriSpeech -------------------------------------------------------------------------------------

SPEAKERS_TXT = """\
; Some pipe(|) separated metadata about all LibriVox readers, whose work was used
; in the corpus.
;ID  |SEX| SUBSET           |MINUTES| NAME
19   | F | train-clean-100  | 25.19 | Kara Shallenberg
60   | M | train-clean-100  | 20.18 | |CBW|Simon
1688 | M | test-other       |  8.23 | Tim Gregory
"""


def test_librispeech_generated(tmp_path, caplog):
    root = tmp_path / "LibriSpeech"
    root.mkdir()
    (root / "SPEAKERS.TXT").write_text(SPEAKERS_TXT)
    touch(root / "train-clean-100" / "19" / "198", "19-198-0000.opus", "19-198.trans.txt")
    touch(root / "train-clean-100" / "60" / "121082", "60-121082-0000.flac")
    touch(root / "train-clean-100" / "77" / "1", "77-1-0000.opus")  # reader not in SPEAKERS.TXT
    touch(root / "test-other" / "1688" / "142285", "1688-142285-0000.opus", "1688-142285-0001.opus")
    assert detect_reader(root) == "librispeech"
    assert detect_reader(root / "test-other") == "librispeech"
    with caplog.at_level(logging.WARNING, logger="persona"):
        clips = read_corpus(str(root))
    assert_well_formed(clips, "librispeech")
    assert [(c.path.name, c.speaker, c.emotion, c.emotion_raw, c.gender, c.age) for c in clips] == [
        ("1688-142285-0000.opus", "librispeech:1688", None, None, "male", None),
        ("1688-142285-0001.opus", "librispeech:1688", None, None, "male", None),
        ("19-198-0000.opus", "librispeech:19", None, None, "female", None),
        ("60-121082-0000.flac", "librispeech:60", None, None, "male", None),  # "|" in the name
    ]
    assert "skipped 1 files of readers without a sex" in caplog.text
    subset = read_corpus(str(root / "test-other"))  # SPEAKERS.TXT is found one folder up
    assert [c.speaker for c in subset] == ["librispeech:1688"] * 2


def test_librispeech_without_speakers_table_is_refused(tmp_path):
    touch(tmp_path / "19" / "198", "19-198-0000.opus")
    with pytest.raises(UsageError, match="no SPEAKERS.TXT"):
        read_corpus(f"librispeech:{tmp_path}")


def test_librispeech_real():
    root = require_shared("librispeech")
    clips = read_corpus(str(root))
    assert_well_formed(clips, "librispeech")
    assert len(clips) == 351
    assert len({c.speaker for c in clips}) == 261
    assert speaker_sexes(clips) == {"male": 131, "female": 130}
    assert all(c.emotion is None and c.emotion_raw is None and c.age is None for c in clips)
    assert Counter(c.path.relative_to(root).parts[0] for c in clips) == {"train-clean-100": 251, "test-other": 100}


# --- detection on every real folder ------------------------------------------------------------------

REAL_LAYOUTS = {
    "ravdess": "ravdess",
    "ravdess/Actor_03": "ravdess",
    "emodb": "emodb",
    "commonvoice": "commonvoice",
    "commonvoice/de": "commonvoice",
    "ased": "ased",
    "ased/04Sad": "ased",
    "urdu": "urdu",
    "urdu/Angry": "urdu",
    "baved": "baved",
    "baved/0": "baved",
    "librispeech": "librispeech",
    "librispeech/test-other": "librispeech",
}


@pytest.mark.parametrize("folder", sorted(REAL_LAYOUTS))
def test_real_folder_is_detected_as_exactly_its_reader(folder):
    path = require_shared(*folder.split("/"))
    assert [name for name, looks_like in LAYOUTS.items() if looks_like(path)] == [REAL_LAYOUTS[folder]]


def test_every_real_corpus_folder_is_covered():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not available: {SHARED_DATA}")
    unlabelled = {"crema-d", "long"}  # CREMA-D's label files without its audio; unlabelled recordings
    folders = {p.name for p in SHARED_DATA.iterdir() if p.is_dir()}
    assert folders - unlabelled == {folder for folder in REAL_LAYOUTS if "/" not in folder}
    for name in unlabelled & folders:
        with pytest.raises(UsageError, match="cannot tell which corpus"):
            detect_reader(SHARED_DATA / name)


def test_detection_failure_names_every_layout(tmp_path):
    touch(tmp_path, "song.opus")
    with pytest.raises(UsageError) as err:
        detect_reader(tmp_path)
    message = str(err.value)
    assert all(f"({name})" in message for name in LAYOUTS if name != "manifest")
    assert "manifest" in message
