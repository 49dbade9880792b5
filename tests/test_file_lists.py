"""`--files-from` lists: plain lines, or a CSV/TSV with a `path` column and an optional `speaker` column."""

from __future__ import annotations

import os

import pytest

from persona_cli.errors import UsageError
from persona_cli.file_lists import read_file_list, speaker_of


def test_a_plain_list_is_one_path_per_line_with_blank_lines_skipped():
    listed = read_file_list(["a.wav\n", "\n", "dir/b, with comma.mp3\r\n"], "list.txt")
    assert listed.paths == ["a.wav", "dir/b, with comma.mp3"] and listed.speakers == {}


@pytest.mark.parametrize("delimiter", [",", "\t"], ids=["comma", "tab"])
def test_a_csv_header_with_a_path_column_reads_paths_and_speakers(delimiter):
    lines = [
        f"speaker{delimiter}path{delimiter}note",
        f"anna{delimiter}calls/1.wav{delimiter}x",
        f"{delimiter}calls/2.wav{delimiter}",
        f"bo{delimiter}calls/3.wav{delimiter}",
    ]
    listed = read_file_list(lines, "calls.csv")
    assert listed.paths == ["calls/1.wav", "calls/2.wav", "calls/3.wav"]
    assert listed.speakers == {os.path.abspath("calls/1.wav"): "anna", os.path.abspath("calls/3.wav"): "bo"}


def test_quoted_csv_paths_keep_their_commas():
    listed = read_file_list(["path,speaker", '"a, b.wav",s1'], "x.csv")
    assert listed.paths == ["a, b.wav"] and listed.speakers == {os.path.abspath("a, b.wav"): "s1"}


def test_a_csv_row_without_a_path_is_a_usage_error_naming_its_line():
    with pytest.raises(UsageError, match=r"x.csv, line 3: empty path"):
        read_file_list(["path,speaker", "a.wav,s", ",s"], "x.csv")


def test_speaker_of_looks_at_the_file_then_the_folders_above_it(tmp_path):
    speakers = {str(tmp_path / "calls" / "anna"): "anna", str(tmp_path / "calls" / "bo" / "2.wav"): "bo"}
    assert speaker_of(tmp_path / "calls" / "anna" / "day1" / "1.wav", speakers) == "anna"
    assert speaker_of(tmp_path / "calls" / "bo" / "2.wav", speakers) == "bo"
    assert speaker_of(tmp_path / "calls" / "bo" / "3.wav", speakers) is None
    assert speaker_of(tmp_path / "x.wav", {}) is None
