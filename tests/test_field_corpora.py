"""Readers for ASED and URDU, on generated layouts and on the real copies in ../shared/data.

Generated corpora are empty files named as the real ones are, quirks included; the real-data tests
check the counts ../shared/data/README.md documents.
"""

from __future__ import annotations

from collections import Counter

from conftest import assert_well_formed, require_shared, touch
from persona_cli.corpora import LabelledClip, detect_reader, read_corpus


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
