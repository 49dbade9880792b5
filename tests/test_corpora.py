"""Corpus readers on the real corpora in ../shared/data and on generated layouts in tmp_path.

Readers only look at names and label files, so generated corpora are empty files named correctly.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

import pytest

from conftest import SAMPLE_AUDIO, assert_well_formed, require_shared, touch
from persona_cli import corpora
from persona_cli.corpora import (
    AGE_BUCKETS,
    READERS,
    detect_reader,
    read_corpora,
    read_corpus,
    summarize,
)
from persona_cli.errors import UsageError
from persona_cli.labels import EMOTIONS, GENDERS

# --- real corpora ------------------------------------------------------------------------------------


def test_ravdess_real():
    root = require_shared("ravdess")
    clips = read_corpus(str(root))
    assert_well_formed(clips, "ravdess")
    assert len(clips) == 1200
    assert len({c.speaker for c in clips}) == 20
    raw = Counter(c.emotion_raw for c in clips)
    assert set(raw) == {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
    assert raw["neutral"] == 80 and raw["calm"] == 160  # RAVDESS has no strong-intensity neutral
    assert sum(c.emotion is not None for c in clips) == 1200 - 160 - 160  # calm, surprised masked
    assert Counter(c.gender for c in clips) == {"female": 600, "male": 600}
    assert all(c.age is None for c in clips)
    by_name = {c.path.name: c for c in clips}
    c = by_name["03-01-05-01-01-01-12.flac"]
    assert (c.speaker, c.gender, c.emotion, c.emotion_raw) == ("ravdess:12", "female", "anger", "angry")
    c = by_name["03-01-08-01-01-01-17.flac"]
    assert (c.speaker, c.gender, c.emotion, c.emotion_raw) == ("ravdess:17", "male", None, "surprised")


def test_ravdess_single_actor_folder():
    root = require_shared("ravdess", "Actor_03")
    assert detect_reader(root) == "ravdess"
    clips = read_corpus(str(root))
    assert len(clips) == 60 and {c.speaker for c in clips} == {"ravdess:03"}


def test_emodb_real():
    root = require_shared("emodb")
    clips = read_corpus(str(root))
    assert_well_formed(clips, "emodb")
    assert len(clips) == 535
    assert len({c.speaker for c in clips}) == 10
    with open(root / "speakers.csv", newline="") as f:
        table = {row["speaker"]: (row["sex"], float(row["age"])) for row in csv.DictReader(f)}
    for clip in clips:
        assert (clip.gender, clip.age) == table[clip.speaker.removeprefix("emodb:")]
    raw = Counter(c.emotion_raw for c in clips)
    assert raw["boredom"] == 81
    assert sum(c.emotion is None for c in clips) == 81
    assert {c.emotion for c in clips} - {None} == set(EMOTIONS)


def test_emodb_fallback_table_matches_published_speakers_csv():
    root = require_shared("emodb")
    with open(root / "speakers.csv", newline="") as f:
        table = {row["speaker"]: (row["sex"], float(row["age"])) for row in csv.DictReader(f)}
    assert corpora.EMODB_SPEAKERS == table


def test_emodb_without_speakers_csv_uses_published_table(tmp_path):
    touch(tmp_path / "emodb" / "wav", "03a01Wa.wav", "08a02Lb.wav", "16b10Tc.flac", "notes.wav")
    clips = read_corpus(str(tmp_path / "emodb"))
    assert [(c.speaker, c.gender, c.age, c.emotion, c.emotion_raw) for c in clips] == [
        ("emodb:03", "male", 31.0, "anger", "anger"),
        ("emodb:08", "female", 34.0, None, "boredom"),
        ("emodb:16", "female", 31.0, "sad", "sadness"),
    ]


def test_commonvoice_real():
    root = require_shared("commonvoice")
    clips = read_corpus(str(root))
    assert_well_formed(clips, "commonvoice")
    languages = {c.path.parent.parent.name for c in clips}
    assert len(languages) > 10
    expected_rows = sum(sum(1 for _ in open(tsv, encoding="utf-8")) - 1 for tsv in root.glob("*/validated.tsv"))
    assert len(clips) == expected_rows  # every row has its clip and both labels in this sample
    assert all(c.emotion is None and c.emotion_raw is None for c in clips)
    assert all(c.gender in GENDERS for c in clips)
    assert {c.age for c in clips} <= set(AGE_BUCKETS.values())
    assert len({c.speaker for c in clips}) > 1000


def test_commonvoice_one_language_folder():
    root = require_shared("commonvoice", "de")
    clips = read_corpus(str(root))
    assert clips and all(c.path.parent == root / "clips" for c in clips)


def write_tsv(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    lines = ["\t".join(header)] + ["\t".join(row.get(col, "") for col in header) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_commonvoice_columns_by_name_newer_release(tmp_path, caplog):
    lang = tmp_path / "cv-corpus-17" / "fr"
    touch(lang / "clips", "a.mp3", "b.mp3", "c.mp3", "d.mp3")
    header = [
        "client_id",
        "path",
        "sentence_id",
        "sentence",
        "sentence_domain",
        "up_votes",
        "down_votes",
        "gender",
        "age",
        "accents",
        "variant",
        "locale",
        "segment",
    ]  # reordered, with additions
    write_tsv(
        lang / "validated.tsv",
        header,
        [
            {
                "client_id": "u1",
                "path": "a.mp3",
                "sentence": 'Il a dit "bonjour',
                "age": "fourties",
                "gender": "male_masculine",
                "accents": "France",
            },
            {"client_id": "u2", "path": "b.mp3", "sentence": "Oui.", "age": "twenties", "gender": "female_feminine"},
            {"client_id": "u3", "path": "c.mp3", "age": "sixties", "gender": "do_not_wish_to_say"},
            {"client_id": "u4", "path": "d.mp3"},  # no labels at all: nothing to learn from
            {"client_id": "u5", "path": "gone.mp3", "age": "teens", "gender": "male"},  # clip missing
        ],
    )
    assert detect_reader(tmp_path / "cv-corpus-17") == "commonvoice"
    with caplog.at_level(logging.WARNING, logger="persona"):
        clips = read_corpus(str(tmp_path / "cv-corpus-17"))
    assert [(c.speaker, c.gender, c.age) for c in clips] == [
        ("commonvoice:u1", "male", 45.0),
        ("commonvoice:u2", "female", 25.0),
        ("commonvoice:u3", None, 65.0),
    ]
    assert "1 of 5 rows" in caplog.text and "missing" in caplog.text


# --- generated layouts -------------------------------------------------------------------------------


def crema_names(count: int) -> list[str]:
    """Real CREMA-D file names, spread over actors and emotions."""
    index = require_shared("crema-d", "AudioWAV_lfs_index.csv")
    with open(index, newline="") as f:
        names = [row["file"] for row in csv.DictReader(f)]
    return names[:: len(names) // count][:count]


def test_crema_d_generated_with_bundled_demographics(tmp_path):
    names = crema_names(40)
    touch(tmp_path / "CREMA-D" / "AudioWAV", *names)
    assert detect_reader(tmp_path / "CREMA-D") == "crema-d"
    clips = read_corpus(str(tmp_path / "CREMA-D"))
    assert_well_formed(clips, "crema-d")
    assert len(clips) == 40
    assert {c.emotion for c in clips} == set(EMOTIONS)
    assert all(c.gender in GENDERS and c.age is not None for c in clips)
    with open(require_shared("crema-d", "VideoDemographics.csv"), newline="") as f:
        actors = {row["ActorID"]: (row["Sex"].lower(), float(row["Age"])) for row in csv.DictReader(f)}
    for clip in clips:
        actor = clip.path.name[:4]
        assert clip.speaker == f"crema-d:{actor}"
        assert (clip.gender, clip.age) == actors[actor]
        assert clip.emotion_raw == clip.emotion  # CREMA-D's own six are the paper's six


def test_crema_d_prefers_the_corpus_own_demographics(tmp_path):
    touch(tmp_path / "AudioWAV", "1001_DFA_ANG_XX.wav", "1001_IEO_SAD_HI.wav")
    (tmp_path / "VideoDemographics.csv").write_text('"ActorID","Age","Sex"\n1001,60,"Female"\n')
    clips = read_corpus(f"crema-d:{tmp_path}")
    assert [(c.gender, c.age, c.emotion) for c in clips] == [
        ("female", 60.0, "anger"),
        ("female", 60.0, "sad"),
    ]


def test_bundled_demographics_is_the_published_file():
    shared = require_shared("crema-d", "VideoDemographics.csv")
    bundled = Path(corpora.__file__).parent.parent / "data" / "VideoDemographics.csv"  # persona_cli/data
    assert bundled.read_bytes() == shared.read_bytes()
    assert (bundled.parent / "CREMA-D-LICENSE.txt").read_text().count("Open Database License") == 1


def test_tess_generated(tmp_path):
    root = tmp_path / "TESS"
    touch(root / "OAF_angry", "OAF_back_angry.wav", "OAF_bar_angry.wav")
    touch(root / "YAF_pleasant_surprised", "YAF_back_ps.wav")
    touch(root / "OAF_Fear", "OAF_back_fear.wav", "readme.wav")
    assert detect_reader(root) == "tess"
    clips = read_corpus(str(root))
    assert_well_formed(clips, "tess")
    assert [(c.path.name, c.speaker, c.emotion, c.emotion_raw, c.age) for c in clips] == [
        ("OAF_back_fear.wav", "tess:OAF", "fear", "fear", 64.0),  # sorted by path: "OAF_Fear" < "OAF_angry"
        ("OAF_back_angry.wav", "tess:OAF", "anger", "angry", 64.0),
        ("OAF_bar_angry.wav", "tess:OAF", "anger", "angry", 64.0),
        ("YAF_back_ps.wav", "tess:YAF", None, "ps", 26.0),
    ]
    assert {c.gender for c in clips} == {"female"}


def test_tess_files_directly_under_root(tmp_path):
    touch(tmp_path, "YAF_dog_sad.wav", "OAF_dog_neutral.wav")
    clips = read_corpus(str(tmp_path))
    assert [(c.speaker, c.emotion) for c in clips] == [("tess:OAF", "neutral"), ("tess:YAF", "sad")]


def test_readers_take_every_audio_extension_persona_reads(tmp_path):
    touch(tmp_path / "Actor_01", "03-01-01-01-01-01-01.opus", "03-01-03-01-01-01-01.MP3", "03-01-04-01-01-01-01.txt")
    clips = read_corpus(str(tmp_path))
    assert [c.path.name for c in clips] == ["03-01-01-01-01-01-01.opus", "03-01-03-01-01-01-01.MP3"]


def write_manifest(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(["path,speaker,emotion,gender,age", *rows]) + "\n")
    return path


def test_manifest(tmp_path):
    touch(tmp_path / "audio", "a.wav", "b.wav", "c.wav")
    elsewhere = touch(tmp_path / "other", "d.flac")[0]
    manifest = write_manifest(
        tmp_path / "labels.csv",
        [
            "audio/a.wav,spk1,Angry,female,30",
            "audio/b.wav,,,,",
            "audio/c.wav,spk1,surprised,m,twenties",
            f"{elsewhere},spk2,sadness,other,41.5",
            "audio/missing.wav,spk3,sad,male,20",
        ],
    )
    assert detect_reader(manifest) == "manifest"
    clips = read_corpus(str(manifest))
    assert [(c.path, c.speaker, c.emotion, c.emotion_raw, c.gender, c.age) for c in clips] == [
        (tmp_path / "audio" / "a.wav", "manifest:spk1", "anger", "Angry", "female", 30.0),
        (tmp_path / "audio" / "b.wav", f"manifest:{tmp_path / 'audio' / 'b.wav'}", None, None, None, None),
        (tmp_path / "audio" / "c.wav", "manifest:spk1", None, "surprised", "male", 25.0),
        (elsewhere, "manifest:spk2", "sad", "sadness", None, 41.5),
    ]


def test_the_shipped_sample_manifest_labels_every_sample_clip_as_sources_tsv_does():
    # README's `persona eval sample_audio/manifest.csv` must run on a fresh clone, without ../shared.
    with open(SAMPLE_AUDIO / "SOURCES.tsv", newline="", encoding="utf-8") as sources:
        expected = {
            SAMPLE_AUDIO / row["file"]: (row["gender"], AGE_BUCKETS[row["age"]])
            for row in csv.DictReader(sources, delimiter="\t")
        }
    clips = read_corpus(str(SAMPLE_AUDIO / "manifest.csv"))
    assert len(clips) == len(expected) == len(list(SAMPLE_AUDIO.glob("*.mp3"))) == 9
    assert {c.path: (c.gender, c.age) for c in clips} == expected
    assert all(c.emotion is None and c.emotion_raw is None for c in clips)  # Common Voice has no emotion labels
    assert len({c.speaker for c in clips}) == 9


@pytest.mark.parametrize("age", ["abc", "-3", "nan"], ids=["letters", "negative", "nan"])
def test_manifest_bad_age_names_the_line(tmp_path, age):
    touch(tmp_path, "a.wav", "b.wav")
    manifest = write_manifest(tmp_path / "m.csv", ["a.wav,s,happy,male,20", f"b.wav,s,happy,male,{age}"])
    with pytest.raises(UsageError, match=r"m\.csv line 3: age"):
        read_corpus(str(manifest))


# --- specs, detection, summary -------------------------------------------------------------------


def test_forced_reader_and_paths_with_colons(tmp_path):
    odd = tmp_path / "a:b"  # a colon in a folder name is not a reader prefix
    touch(odd, "OAF_dog_happy.wav")
    assert [c.emotion for c in read_corpus(str(odd))] == ["happy"]
    assert [c.emotion for c in read_corpus(f"tess:{odd}")] == ["happy"]
    with pytest.raises(UsageError, match="no such file or folder"):
        read_corpus("C:/no/such/corpus")


def test_forced_reader_on_the_wrong_layout_is_an_empty_corpus(tmp_path):
    touch(tmp_path, "OAF_dog_happy.wav")
    with pytest.raises(UsageError, match=f"no labelled clips found in {tmp_path}"):
        read_corpus(f"ravdess:{tmp_path}")


def test_forced_reader_needs_the_right_kind_of_path(tmp_path):
    manifest = write_manifest(tmp_path / "m.csv", [])
    with pytest.raises(UsageError, match="needs a folder"):
        read_corpus(f"ravdess:{manifest}")
    with pytest.raises(UsageError, match="needs a CSV file"):
        read_corpus(f"manifest:{tmp_path}")


def test_detection_failure_is_one_line(tmp_path):
    touch(tmp_path, "song.wav")
    with pytest.raises(UsageError) as err:
        detect_reader(tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message and "NAME:PATH" in message
    with pytest.raises(UsageError, match="no such file or folder"):
        detect_reader(tmp_path / "absent")


def test_empty_corpus_names_the_path(tmp_path):
    (tmp_path / "Actor_01").mkdir()
    with pytest.raises(UsageError, match=f"no labelled clips found in {tmp_path}"):
        read_corpus(str(tmp_path))


def test_ambiguous_layout_is_refused(tmp_path):
    touch(tmp_path / "Actor_01", "03-01-01-01-01-01-01.wav")
    touch(tmp_path / "AudioWAV", "1001_DFA_ANG_XX.wav")
    with pytest.raises(UsageError, match="several corpora"):
        detect_reader(tmp_path)
    assert len(read_corpus(f"crema-d:{tmp_path}")) == 1


def test_every_reader_is_detectable():
    assert set(corpora.LAYOUTS) == set(READERS)


def test_read_corpora_concatenates_in_order_and_summarize_counts(tmp_path):
    touch(tmp_path / "tess", "OAF_dog_happy.wav", "YAF_dog_ps.wav")
    touch(tmp_path / "rav" / "Actor_02", "03-01-02-01-01-01-02.wav", "03-01-04-01-01-01-02.wav")
    specs = [str(tmp_path / "tess"), str(tmp_path / "rav")]
    clips = read_corpora(specs)
    assert [c.corpus for c in clips] == ["tess", "tess", "ravdess", "ravdess"]
    assert read_corpora(specs) == clips
    text = summarize(clips)
    lines = text.splitlines()
    assert lines[0].split() == ["corpus", "clips", "speakers", "emotion", "gender", "age"]
    assert lines[1].split() == ["tess", "2", "2", "1", "2", "2"]
    assert lines[2].split() == ["ravdess", "2", "1", "1", "2", "0"]
    assert lines[3].split() == ["all", "4", "3", "2", "4", "2"]
    assert any(line.split() == ["ravdess:calm", "(masked)", "1"] for line in lines)
    assert any(line.split() == ["tess:ps", "(masked)", "1"] for line in lines)
    assert any(line.split() == ["female", "4"] for line in lines)
    assert "age: 2 labelled, mean 45.0, min 26, max 64 years" in text
    assert summarize([]) == "no clips"
