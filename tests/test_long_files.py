"""One long recording on every worker: its chunks are decoded in order and embedded in pieces by all
the workers, and what comes out equals the one-worker path, in input order, errors included."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import require_shared
from persona_cli.audio import SAMPLE_RATE, load_audio
from persona_cli.embedding import Waveform, embed_files
from persona_cli.encoders import load_encoder
from persona_cli.labels import EMOTIONS
from persona_cli.options import PredictOptions
from persona_cli.predictor import Predictor

#: 2 s chunks make a 30 s recording "long" (15 chunks) without minutes of audio to embed
SHORT_CHUNKS = {"chunk_seconds": 2.0, "batch_size": 4}


class ThreadRecorder:
    """An encoder that notes which thread embeds each batch, and otherwise is the real one."""

    def __init__(self, encoder):
        self.encoder, self.threads = encoder, set()

    def embed_with_speech(self, waves):
        self.threads.add(threading.current_thread().name)
        return self.encoder.embed_with_speech(waves)

    def __getattr__(self, name):
        return getattr(self.encoder, name)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("ge2e-layers+prosody", device="cpu")


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory) -> Path:
    """About 30 s of real speech, several RAVDESS actors one after another, as one FLAC file."""
    clips = sorted(require_shared("ravdess").glob("Actor_0[1-8]/*.flac"))[::40][:10]
    path = tmp_path_factory.mktemp("long") / "conversation.flac"
    sf.write(path, np.concatenate([load_audio(clip) for clip in clips]), SAMPLE_RATE)
    return path


def _embedded(sources, encoder, workers: int, processes: bool = False):
    return list(embed_files(sources, encoder, PredictOptions(workers=workers, processes=processes, **SHORT_CHUNKS)))


def _assert_same(parallel, serial) -> None:
    assert [r.path for r in parallel] == [r.path for r in serial]
    for a, b in zip(parallel, serial):
        assert (a.error, a.warning, a.duration_s) == (b.error, b.warning, b.duration_s)
        assert a.speech_s == pytest.approx(b.speech_s)
        if b.vector is None:
            assert a.vector is None
        else:
            np.testing.assert_allclose(a.vector, b.vector, rtol=1e-5, atol=1e-6)


def test_one_long_file_is_embedded_by_every_worker_as_one_worker_would(long_recording, encoder):
    recorder = ThreadRecorder(encoder)
    (parallel,) = _embedded([long_recording], recorder, workers=2)
    (serial,) = _embedded([long_recording], encoder, workers=0)
    assert parallel.error is None and parallel.duration_s == pytest.approx(sf.info(long_recording).duration, abs=1e-3)
    assert len({name for name in recorder.threads if name.startswith("persona-embed")}) == 2
    _assert_same([parallel], [serial])


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_long_and_short_sources_keep_their_order_and_their_errors(long_recording, encoder, tmp_path, processes):
    truncated = tmp_path / "truncated.flac"  # a long header, then the decoder loses sync half way
    truncated.write_bytes(long_recording.read_bytes()[: long_recording.stat().st_size // 2])
    short = sorted(require_shared("ravdess").glob("Actor_01/*.flac"))[:2]
    in_memory = Waveform(load_audio(long_recording)[: 20 * SAMPLE_RATE], SAMPLE_RATE)
    sources = [short[0], long_recording, truncated, tmp_path / "missing.wav", in_memory, short[1]]
    parallel = _embedded(sources, encoder, workers=2, processes=processes)
    serial = _embedded(sources, encoder, workers=0)
    _assert_same(parallel, serial)
    assert [r.error is None for r in parallel] == [True, True, False, False, True, True]
    assert parallel[2].error == "decode error: flac decoder lost sync"
    assert parallel[4].duration_s == 20.0


def test_a_long_recording_gets_the_same_predictions_on_all_cores():
    recording = require_shared("long") / "aepyx_8k.flac"  # 169 s at 8 kHz: six 30 s chunks
    parallel, serial = (next(Predictor(workers=n).predict_files([recording])) for n in (2, 0))
    assert parallel.error is None and parallel.duration_s == serial.duration_s
    for column in ["gender_confidence", "age", *(f"prob_{e}" for e in EMOTIONS)]:
        assert getattr(parallel, column) == pytest.approx(getattr(serial, column), abs=1e-4), column
    assert (parallel.emotion, parallel.gender) == (serial.emotion, serial.gender)
