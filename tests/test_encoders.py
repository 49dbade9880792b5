"""encoders/ and pipeline.embed_files: the mel front end against librosa, GE2E against resemblyzer,
batched against one-at-a-time, long files in pooled chunks, and per-file errors inside a batch."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import require_shared, voice_like
from persona_cli.audio import SAMPLE_RATE, load_audio
from persona_cli.embedding import EmbeddingResult, Waveform, embed_files
from persona_cli.encoders import DEFAULT_ENCODER, ENCODER_NAMES, Encoder, load_encoder
from persona_cli.encoders.fused import FusedEncoder
from persona_cli.encoders.ge2e import (
    HOP,
    PARTIAL_FRAMES,
    GE2EEncoder,
    GE2ELayersEncoder,
    cpu_has_bfloat16_units,
    partial_starts,
    resemblyzer_partial_starts,
)
from persona_cli.encoders.mel import power_mel, slaney_mel_filterbank
from persona_cli.errors import UsageError
from persona_cli.options import PredictOptions

DIMS = {"ge2e": 256, "ge2e-layers": 1280, "mfcc": 160}
#: the Encoder contract (encoders/base.py): batched and one-at-a-time agree to this
BATCH_TOLERANCE = 1e-4


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These batches are small: one intra-op thread is as fast as two, and does not spin-wait to a
    crawl when another process keeps the cores busy (seen: 11 s vs 80 s for this file)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoders() -> dict:
    return {name: load_encoder(name, device="cpu") for name in DIMS}


@pytest.fixture(scope="module")
def resemblyzer_sliced() -> dict:
    """ge2e and ge2e-layers slicing partials as resemblyzer does (revision 1): everything else in
    them is checked against resemblyzer's own code with these."""
    return {
        "ge2e": GE2EEncoder(resemblyzer_slicing=True),
        "ge2e-layers": GE2ELayersEncoder(resemblyzer_slicing=True),
    }


@pytest.fixture(scope="module")
def real_clips() -> list[Path]:
    """Three RAVDESS FLAC clips (16 kHz) and three Common Voice MP3s (48/32 kHz), mixed speakers."""
    ravdess = sorted(require_shared("ravdess").glob("Actor_0[1-4]/*.flac"))[::20][:3]
    commonvoice = sorted(require_shared("commonvoice").glob("*/clips/*.mp3"))[::97][:3]
    if len(ravdess) < 3 or len(commonvoice) < 3:
        pytest.skip("not enough real clips in the shared corpora")
    return ravdess + commonvoice


def write_wav(path: Path, wave: np.ndarray) -> Path:
    """Float WAV at 16 kHz: decodes back bit for bit, so expected vectors can use `wave` itself."""
    sf.write(path, wave, SAMPLE_RATE, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def varied_waves() -> list[np.ndarray]:
    """Generated waves of very different lengths and pitches (0.6 s to 31 s)."""
    return [
        voice_like(0.6, f0=220.0, seed=1),
        voice_like(2.0, f0=110.0, seed=2),
        voice_like(7.0, f0=180.0, seed=3),
        voice_like(31.0, f0=95.0, seed=4),
    ]


# --- mel front end --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels"),
    [(16_000, 400, 40), (16_000, 512, 64), (22_050, 2048, 128)],
    ids=["16kHz-fft400-mels40", "16kHz-fft512-mels64", "22kHz-fft2048-mels128"],
)
def test_slaney_filterbank_equals_librosa(sr, n_fft, n_mels):
    librosa = pytest.importorskip("librosa")
    ours = slaney_mel_filterbank(sr, n_fft, n_mels)
    reference = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    assert ours.shape == reference.shape == (n_mels, n_fft // 2 + 1)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)


def test_power_mel_equals_librosa_melspectrogram():
    librosa = pytest.importorskip("librosa")
    wave = voice_like(2.3, seed=3)
    filters = torch.from_numpy(slaney_mel_filterbank(SAMPLE_RATE, 400, 40))
    ours = power_mel(torch.from_numpy(wave), filters, 160).numpy()
    reference = librosa.feature.melspectrogram(
        y=wave, sr=SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=40, pad_mode="constant"
    ).T
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5)


def test_mfcc_encoder_is_mean_and_std_of_librosa_mfccs_and_deltas_over_sounding_frames(encoders):
    librosa = pytest.importorskip("librosa")
    scipy_fft = pytest.importorskip("scipy.fft")
    # a second of digital silence either side, as around an acted sentence: those frames must not count
    silence = np.zeros(SAMPLE_RATE, np.float32)
    wave = np.concatenate([silence, voice_like(2.3, seed=5), silence])
    mel = librosa.feature.melspectrogram(
        y=wave, sr=SAMPLE_RATE, n_fft=1024, hop_length=160, n_mels=128, pad_mode="constant"
    )
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    mfcc = scipy_fft.dct(log_mel, axis=0, type=2, norm="ortho")[:40]
    edges = np.pad(mfcc, ((0, 0), (1, 1)), mode="edge")
    delta = (edges[:, 2:] - edges[:, :-2]) / 2
    energy_db = librosa.power_to_db(mel.sum(axis=0), ref=1.0, amin=1e-10, top_db=None)
    sounding = energy_db > energy_db.max() - 40
    assert 0.3 < sounding.mean() < 0.6  # the silence is really left out
    mfcc, delta = mfcc[:, sounding], delta[:, sounding]
    expected = np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1), delta.mean(axis=1), delta.std(axis=1)])
    np.testing.assert_allclose(encoders["mfcc"].embed([wave])[0], expected, rtol=1e-4, atol=1e-3)


# --- GE2E against the reference implementation ----------------------------------------------------


def test_ge2e_equals_resemblyzer_on_real_speech(resemblyzer_sliced, real_clips):
    resemblyzer = pytest.importorskip("resemblyzer")
    waves = [load_audio(path) for path in real_clips]
    reference_encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)
    reference = np.stack([reference_encoder.embed_utterance(resemblyzer.preprocess_wav(w)) for w in waves])

    ours = resemblyzer_sliced["ge2e"].embed(waves)

    assert ours.shape == reference.shape == (len(waves), 256)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4)
    # distinct speakers give distinct vectors: the match above is not two constants agreeing
    assert np.abs(ours[0] - ours[-1]).max() > 1e-2


@pytest.mark.parametrize("seconds", [0.5, 1.6, 1.7, 2.0, 3.5, 4.6, 9.9, 30.0])
def test_partials_cover_every_frame_with_less_work_than_resemblyzers(seconds):
    n_samples = int(seconds * SAMPLE_RATE)
    n_frames = int(np.ceil(n_samples / HOP))  # frames centred inside the wave
    starts = partial_starts(n_samples)

    covered = np.zeros(max(n_frames, PARTIAL_FRAMES), bool)
    for start in starts:
        covered[start : start + PARTIAL_FRAMES] = True
    assert covered.all()  # no frame left out, the tail included
    assert starts[-1] + PARTIAL_FRAMES == max(n_frames, PARTIAL_FRAMES)  # and none past the end
    # one fewer partial would leave frames out
    assert (len(starts) - 1) * PARTIAL_FRAMES < n_frames
    # resemblyzer drops up to 1.2 s of a short clip's end, so under ~2.5 s it may take one partial
    # fewer; from a few seconds on, a partial every 0.77 s is far more work
    if seconds >= 4:
        assert len(starts) < 0.75 * len(resemblyzer_partial_starts(n_samples))


def test_ge2e_with_its_own_partials_stays_close_to_resemblyzers(encoders, resemblyzer_sliced, real_clips):
    """Fewer partials change the numbers a little, not what they describe: each clip's vector stays
    far closer to its resemblyzer-sliced self than to another speaker's."""
    waves = [load_audio(path) for path in real_clips]
    ours, theirs = encoders["ge2e-layers"].embed(waves), resemblyzer_sliced["ge2e-layers"].embed(waves)
    assert not np.array_equal(ours, theirs)

    def cosine(a, b):
        return (a @ b.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))

    embedding = cosine(ours[:, :256], theirs[:, :256])
    assert np.diag(embedding).min() > 0.97
    assert np.diag(embedding).min() > (embedding - 2 * np.eye(len(waves))).max()
    statistics = cosine(ours[:, 256:], theirs[:, 256:])
    assert np.diag(statistics).min() > max(0.98, (statistics - 2 * np.eye(len(waves))).max())


def test_ge2e_layers_are_the_embedding_and_statistics_of_resemblyzers_own_lstm_outputs(resemblyzer_sliced, real_clips):
    """The first 256 values are ge2e's embedding; the rest are the mean and std, over every frame of
    every partial, of the middle layer's outputs (a 2-layer LSTM holding resemblyzer's first two layers)
    and of the top layer's (resemblyzer's 3-layer LSTM's own output)."""
    pytest.importorskip("resemblyzer")
    from resemblyzer_reference import resemblyzer_layers_embedder

    reference = resemblyzer_layers_embedder()
    waves = [load_audio(path) for path in real_clips]
    expected = np.stack([reference(wave) for wave in waves])

    ours = resemblyzer_sliced["ge2e-layers"].embed(waves)

    np.testing.assert_array_equal(ours[:, :256], resemblyzer_sliced["ge2e"].embed(waves))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)
    assert np.abs(ours[0, 256:] - ours[-1, 256:]).max() > 1e-2


# --- batching -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DIMS))
def test_batched_equals_one_at_a_time_and_order_does_not_matter(encoders, varied_waves, real_clips, name):
    encoder = encoders[name]
    waves = varied_waves + [load_audio(path) for path in (real_clips[0], real_clips[3])]
    one_at_a_time = np.stack([encoder.embed([w])[0] for w in waves])

    batched = encoder.embed(waves)
    np.testing.assert_allclose(batched, one_at_a_time, rtol=0, atol=BATCH_TOLERANCE)

    # shuffled, each file's vector is unchanged: nothing leaks from one file into the next
    order = list(range(len(waves)))
    random.Random(1).shuffle(order)
    assert order != sorted(order)
    shuffled = encoder.embed([waves[i] for i in order])
    np.testing.assert_allclose(shuffled, one_at_a_time[order], rtol=0, atol=BATCH_TOLERANCE)

    # the vectors really differ between files, so a mix-up between rows would be caught
    distances = np.abs(one_at_a_time[:, None, :] - one_at_a_time[None, :, :]).max(axis=2)
    assert distances[~np.eye(len(waves), dtype=bool)].min() > 1e-3


@pytest.mark.parametrize("name", list(DIMS))
def test_repeated_calls_are_deterministic(encoders, name):
    encoder = encoders[name]
    wave = voice_like(3.0, seed=7)
    first = encoder.embed([wave])
    encoder.embed([voice_like(5.0, f0=300.0, seed=8)])  # something else in between
    np.testing.assert_array_equal(encoder.embed([wave]), first)


# --- shapes, dtypes, norms, edge inputs ---------------------------------------------------------


@pytest.mark.parametrize("name", list(DIMS))
def test_shapes_dtype_and_dim(encoders, varied_waves, name):
    encoder = encoders[name]
    assert encoder.name == name and encoder.dim == DIMS[name]
    vectors = encoder.embed(varied_waves[:3])
    assert vectors.shape == (3, DIMS[name]) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    empty = encoder.embed([])
    assert empty.shape == (0, DIMS[name]) and empty.dtype == np.float32


def test_ge2e_vectors_have_unit_norm(encoders, varied_waves):
    vectors = encoders["ge2e"].embed(varied_waves[:3])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors >= 0).all()  # ReLU before the normalisation, as in resemblyzer


@pytest.mark.parametrize("name", list(DIMS))
@pytest.mark.parametrize(
    "wave",
    [
        pytest.param(np.zeros(2 * SAMPLE_RATE, np.float32), id="digital-silence"),
        pytest.param(voice_like(0.5, seed=9), id="half-second"),
        pytest.param(np.zeros(SAMPLE_RATE // 2, np.float32), id="half-second-silence"),
    ],
)
def test_edge_inputs_give_finite_vectors(encoders, name, wave):
    vector = encoders[name].embed([wave])
    assert vector.shape == (1, DIMS[name])
    assert np.isfinite(vector).all()
    if name.startswith("ge2e"):
        assert np.linalg.norm(vector[0, :256]) == pytest.approx(1.0, abs=1e-5)


def test_pool_is_duration_weighted_mean(encoders):
    chunks = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    seconds = np.array([30.0, 30.0, 15.0])
    mean = np.array([0.6, 0.6], np.float32)  # (30*[1,0] + 30*[0,1] + 15*[1,1]) / 75
    np.testing.assert_allclose(encoders["mfcc"].pool(chunks, seconds), mean, atol=1e-6)
    # GE2E renormalises the pooled vector back onto the unit sphere
    np.testing.assert_allclose(encoders["ge2e"].pool(chunks, seconds), mean / np.linalg.norm(mean), atol=1e-6)


def test_ge2e_layers_pool_gives_the_statistics_of_all_the_chunks_frames(encoders):
    """Pooling chunks' [embedding | means | stds] gives the mean and std of their frames put together,
    when each chunk's frame count is proportional to its duration."""
    rng = np.random.default_rng(0)
    frames = [rng.normal(size=(n, 512)) * rng.uniform(0.1, 1, 512) + rng.uniform(-1, 1, 512) for n in (300, 300, 150)]
    embeddings = np.abs(rng.normal(size=(3, 256)))
    chunks = np.stack(
        [np.concatenate([e / np.linalg.norm(e), f.mean(0), f.std(0)]) for e, f in zip(embeddings, frames)]
    )

    pooled = encoders["ge2e-layers"].pool(chunks.astype(np.float32), np.array([30.0, 30.0, 15.0]))

    everything = np.concatenate(frames)
    np.testing.assert_allclose(
        pooled[:256], encoders["ge2e"].pool(chunks[:, :256], np.array([30.0, 30.0, 15.0])), atol=1e-6
    )
    np.testing.assert_allclose(pooled[256:], np.concatenate([everything.mean(0), everything.std(0)]), atol=1e-5)


@pytest.mark.parametrize("name", [*DIMS, "ge2e-layers+mfcc"])
def test_pooling_chunks_as_they_come_gives_what_pool_gives_them_all_at_once(encoders, name):
    """A Pooling keeps running sums (a speaker's voice over an hour of segments): fed its chunks one
    and then a few at a time, it must pool them exactly as Encoder.pool does."""
    encoder = FusedEncoder([encoders["ge2e-layers"], encoders["mfcc"]]) if "+" in name else encoders[name]
    rng = np.random.default_rng(3)
    chunks = np.abs(rng.normal(size=(7, encoder.dim))).astype(np.float32)  # stds must be >= 0
    seconds = rng.uniform(0.5, 4.0, size=7)

    pooling = encoder.pooling()
    for start, end in [(0, 1), (1, 4), (4, 7)]:
        pooling.add(chunks[start:end], seconds[start:end])

    np.testing.assert_allclose(pooling.result(), encoder.pool(chunks, seconds), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="nothing to pool"):
        encoder.pooling().result()


# --- registry -----------------------------------------------------------------------------------


def test_registry_names():
    assert {"ge2e", "mfcc", "xvector", "ecapa"} <= set(ENCODER_NAMES)
    assert DEFAULT_ENCODER == "ge2e-layers+prosody"


def test_unknown_encoder_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown encoder 'wav2vec'") as info:
        load_encoder("wav2vec")
    for name in ENCODER_NAMES:
        assert name in str(info.value)


# --- long files through embed_files ---------------------------------------------------------------


@pytest.fixture(scope="module")
def long_file(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """A 75 s WAV and its three 30 s / 30 s / 15 s chunks."""
    wave = voice_like(75.0, f0=130.0, seed=11)
    path = write_wav(tmp_path_factory.mktemp("long") / "long.wav", wave)
    step = 30 * SAMPLE_RATE
    return path, [wave[:step], wave[step : 2 * step], wave[2 * step :]]


# ge2e once, on the path where a file's chunks are handed to the encoder before the file ends
@pytest.mark.parametrize(
    ("name", "batch_size"),
    [("ge2e", 2), ("ge2e-layers", 2), ("mfcc", 1), ("mfcc", 2), ("mfcc", 32)],
    ids=["ge2e-batch2", "ge2e-layers-batch2", "mfcc-batch1", "mfcc-batch2", "mfcc-batch32"],
)
def test_long_file_is_embedded_in_pooled_chunks(encoders, long_file, name, batch_size):
    encoder = encoders[name]
    path, chunks = long_file
    chunk_vectors = encoder.embed(chunks)
    expected = encoder.pool(chunk_vectors, np.array([30.0, 30.0, 15.0]))

    results = list(embed_files([path], encoder, PredictOptions(chunk_seconds=30, batch_size=batch_size)))

    assert len(results) == 1
    (result,) = results
    assert result.error is None and result.path == path
    assert result.duration_s == pytest.approx(75.0)
    assert result.vector.shape == (encoder.dim,) and result.vector.dtype == np.float32
    np.testing.assert_allclose(result.vector, expected, rtol=0, atol=BATCH_TOLERANCE)
    # chunking matters: the pooled vector is neither chunk's alone
    assert np.abs(result.vector - chunk_vectors[0]).max() > 1e-3
    assert np.abs(result.vector - chunk_vectors[2]).max() > 1e-3
    # the per-chunk scratch space is emptied once the file is done
    assert result.chunk_vectors == [] and result.chunk_seconds == []


@pytest.mark.parametrize("name", list(DIMS))
def test_file_shorter_than_a_chunk_equals_direct_embedding(encoders, tmp_path, name):
    encoder = encoders[name]
    wave = voice_like(20.0, f0=160.0, seed=12)
    path = write_wav(tmp_path / "twenty.wav", wave)

    (result,) = embed_files([path], encoder, PredictOptions(chunk_seconds=30))

    assert result.error is None and result.duration_s == pytest.approx(20.0)
    np.testing.assert_allclose(result.vector, encoder.embed([load_audio(path)])[0], rtol=0, atol=BATCH_TOLERANCE)


# --- embed_files: input order and per-file errors ---------------------------------------------------


@pytest.fixture
def mixed_inputs(tmp_path, real_clips) -> tuple[list[Path], dict[int, str]]:
    """Good files (real and generated, one spanning several chunks) around two bad ones."""
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is a text file, not audio\n")
    paths = [
        real_clips[0],
        not_audio,
        write_wav(tmp_path / "two.wav", voice_like(2.0, f0=120.0, seed=21)),
        write_wav(tmp_path / "short.wav", voice_like(0.2, seed=22)),
        real_clips[3],  # Common Voice MP3
        write_wav(tmp_path / "seven.wav", voice_like(7.0, f0=210.0, seed=23)),  # three 3 s chunks
        real_clips[1],
    ]
    errors = {1: "not an audio file", 3: "too short: 0.20 s < 0.5 s"}
    return paths, errors


@pytest.mark.parametrize(
    ("name", "batch_size"),
    [
        ("ge2e", 1),
        ("ge2e", 2),
        ("ge2e", 32),
        ("mfcc", 1),
        ("mfcc", 2),
        ("mfcc", 32),
    ],
    ids=["ge2e-batch1", "ge2e-batch2", "ge2e-batch32", "mfcc-batch1", "mfcc-batch2", "mfcc-batch32"],
)
def test_results_keep_input_order_and_bad_files_do_not_disturb_good_ones(encoders, mixed_inputs, name, batch_size):
    encoder = encoders[name]
    paths, errors = mixed_inputs
    options = PredictOptions(chunk_seconds=3.0, batch_size=batch_size)

    results = list(embed_files(paths, encoder, options))

    assert [r.path for r in results] == paths
    assert all(isinstance(r, EmbeddingResult) for r in results)
    for i, result in enumerate(results):
        if i in errors:
            assert result.error == errors[i]
            assert result.vector is None
            continue
        assert result.error is None
        assert result.duration_s == pytest.approx(len(load_audio(paths[i])) / SAMPLE_RATE, abs=1e-3)
        # the same file alone, with the same options, gives the same vector
        (alone,) = embed_files([paths[i]], encoder, options)
        assert alone.error is None
        np.testing.assert_allclose(result.vector, alone.vector, rtol=0, atol=BATCH_TOLERANCE)


@pytest.mark.parametrize("batch_size", [1, 2, 32], ids=["batch1", "batch2", "batch32"])
def test_embed_files_is_lazy_and_yields_every_file_once(encoders, mixed_inputs, batch_size):
    paths, _ = mixed_inputs
    seen: list[Path] = []

    def tracked():
        for path in paths:
            seen.append(path)
            yield path

    results = embed_files(tracked(), encoders["mfcc"], PredictOptions(chunk_seconds=3.0, batch_size=batch_size))
    assert seen == []  # a generator: nothing is read before the first result is asked for
    first = next(results)
    assert first.path == paths[0]
    rest = list(results)
    assert [r.path for r in [first, *rest]] == paths


class RecordingEncoder(Encoder):
    """Wraps an encoder and remembers the length of every wave it was asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.calls: list[list[int]] = []  # the waves' lengths, call by call

    @property
    def lengths(self) -> list[int]:
        return [length for call in self.calls for length in call]

    def embed(self, waves):
        self.calls.append([len(w) for w in waves])
        return self.inner.embed(waves)

    def pooling(self):
        return self.inner.pooling()


@pytest.mark.parametrize(
    "batch_size",
    [1, 2, 32],
    ids=["batch1", "batch2", "batch32"],
)
def test_too_short_files_never_reach_the_encoder(encoders, tmp_path, batch_size):
    short = write_wav(tmp_path / "short.wav", voice_like(0.2, seed=31))
    good = write_wav(tmp_path / "good.wav", voice_like(1.0, seed=32))
    encoder = RecordingEncoder(encoders["mfcc"])

    results = list(embed_files([short, good], encoder, PredictOptions(batch_size=batch_size)))

    assert [r.error for r in results] == ["too short: 0.20 s < 0.5 s", None]
    assert encoder.lengths == [SAMPLE_RATE]  # only the good file was embedded


@pytest.mark.parametrize(
    ("workers", "calls"),
    [(1, [[3, 3], [3], [5, 1, 1]]), (0, [[3, 3, 3], [5, 1, 1]])],
    ids=["a-worker-cuts-before-the-bound", "no-worker-runs-once-it-is-reached"],
)
def test_group_seconds_bounds_the_audio_of_each_encoder_call(encoders, workers, calls):
    """--per segment's groups: about group_seconds of audio per call (whatever batch_size allows),
    the results in input order and as without the bound."""
    seconds = [3.0, 3.0, 3.0, 5.0, 1.0, 1.0]
    waves = [Waveform(voice_like(s, seed=50 + i), SAMPLE_RATE) for i, s in enumerate(seconds)]
    bounded, free = RecordingEncoder(encoders["mfcc"]), RecordingEncoder(encoders["mfcc"])

    options = PredictOptions(batch_size=16, workers=workers, group_seconds=7.0)
    results = list(embed_files(waves, bounded, options))
    unbounded = list(embed_files(waves, free, dataclasses.replace(options, group_seconds=None)))

    assert [[n / SAMPLE_RATE for n in call] for call in bounded.calls] == calls
    assert free.calls == [[int(s * SAMPLE_RATE) for s in seconds]]
    for mine, theirs in zip(results, unbounded, strict=True):
        np.testing.assert_allclose(mine.vector, theirs.vector, atol=BATCH_TOLERANCE)


# --- GE2E on waves shorter than seven 30 ms VAD windows ------------------------------------------------
# trim_long_silences once dilated the voice mask with np.convolve(..., mode="same"), which returns
# max(len(mask), 7) values, so a wave of 1 to 6 VAD windows (30 to 210 ms) raised IndexError. The
# last chunk of any file just over a multiple of chunk_seconds is that short, and IndexError escapes
# _embed_chunks (which catches only RuntimeError and ValueError), so one such file ended the run.


@pytest.mark.parametrize("seconds", [0.04, 0.1, 0.2, 0.25], ids=["40ms", "100ms", "200ms", "250ms"])
def test_ge2e_embeds_very_short_waves_like_resemblyzer(encoders, resemblyzer_sliced, seconds):
    resemblyzer = pytest.importorskip("resemblyzer")
    wave = voice_like(seconds, seed=41)
    reference = resemblyzer.VoiceEncoder("cpu", verbose=False).embed_utterance(resemblyzer.preprocess_wav(wave))
    np.testing.assert_allclose(resemblyzer_sliced["ge2e"].embed([wave])[0], reference, rtol=0, atol=1e-4)
    # under 1.6 s both slicings make the one padded partial
    np.testing.assert_array_equal(encoders["ge2e"].embed([wave])[0], resemblyzer_sliced["ge2e"].embed([wave])[0])


def test_file_with_a_very_short_last_chunk_is_embedded(encoders, tmp_path):
    # 3.15 s in 3 s chunks: the last chunk is 0.15 s (as for a 30.15 s file with the defaults)
    wave = voice_like(3.15, seed=42)
    path = write_wav(tmp_path / "tail.wav", wave)
    (result,) = embed_files([path], encoders["ge2e"], PredictOptions(chunk_seconds=3.0))
    assert result.error is None and result.duration_s == pytest.approx(3.15)
    encoder = encoders["ge2e"]
    split = 3 * SAMPLE_RATE
    expected = encoder.pool(encoder.embed([wave[:split], wave[split:]]), np.array([3.0, 0.15]))
    np.testing.assert_allclose(result.vector, expected, rtol=0, atol=BATCH_TOLERANCE)


def test_silence_trimming_does_not_depend_on_the_files_before(ravdess_clips):
    """The per-thread detector is re-initialised for each file, exactly as a new one would be."""
    from persona_cli.encoders.ge2e import trim_long_silences

    first, second = (load_audio(p) for p in ravdess_clips[:2])
    alone = trim_long_silences(first)
    trim_long_silences(second)
    np.testing.assert_array_equal(trim_long_silences(first), alone)


@pytest.mark.parametrize("name", ["ge2e", "ge2e-layers"])
def test_half_precision_agrees_with_full_precision(real_clips, name):
    """The float16 path (meant for GPUs; a CPU runs it too, slowly) against float32 on real speech."""
    waves = [load_audio(path) for path in real_clips]
    full = load_encoder(name).embed(waves)
    half = load_encoder(name, half=True).embed(waves)
    assert half.dtype == np.float32
    cosine = (full * half).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(half, axis=1)
    assert cosine.min() > 0.999
    assert np.abs(full - half).max() < 5e-3


def test_half_precision_is_refused_where_it_is_not_implemented():
    with pytest.raises(UsageError, match="--half is available for ge2e, ge2e-layers only"):
        load_encoder("mfcc", half=True)


@pytest.mark.skipif(not cpu_has_bfloat16_units(), reason="this CPU has no bfloat16 units")
def test_bfloat16_lstm_agrees_with_float32_and_keeps_the_bundled_models_predictions(real_clips):
    """The CPU default where bfloat16 units exist, against float32, on real speech: the vectors, and
    what the bundled default model makes of them."""
    from persona_cli.model import load_model
    from persona_cli.models_info import bundled_model_path

    waves = [load_audio(path) for path in real_clips]
    encoder = load_encoder("ge2e-layers+prosody")
    vectors = {}
    for bfloat16 in (False, True):
        encoder.parts[0].bfloat16 = bfloat16
        vectors[bfloat16] = encoder.embed(waves)
    full, brain = vectors[False], vectors[True]
    assert brain.dtype == np.float32
    for part in (slice(0, 256), slice(256, 1280)):  # the embedding, the layer statistics
        a, b = full[:, part], brain[:, part]
        assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() > 0.99
    np.testing.assert_array_equal(full[:, 1280:], brain[:, 1280:])  # prosody does not use the LSTM
    model = load_model(bundled_model_path("ge2e-layers+prosody"))
    assert np.abs(model.predict(full).emotion_probs - model.predict(brain).emotion_probs).max() < 0.05


def test_bfloat16_is_asked_for_switched_off_and_kept_apart_in_the_cache(monkeypatch):
    from persona_cli.encoders.ge2e import BFLOAT16_SWITCH, cpu_runs_bfloat16, float32_lstm

    monkeypatch.setenv(BFLOAT16_SWITCH, "0")
    assert not cpu_runs_bfloat16()
    assert not GE2EEncoder().bfloat16  # the default follows the switch
    assert not GE2EEncoder(bfloat16=True, half=True).bfloat16  # float16 (GPUs) wins
    brain, full = GE2EEncoder(bfloat16=True), GE2EEncoder(bfloat16=False)
    assert brain.cache_identity() != full.cache_identity()  # the cache never mixes the two
    monkeypatch.delenv(BFLOAT16_SWITCH)
    assert cpu_runs_bfloat16() == cpu_has_bfloat16_units()
    fused = load_encoder("ge2e-layers+prosody")
    fused.parts[0].bfloat16 = True
    assert not float32_lstm(fused).parts[0].bfloat16  # what persona train embeds with, on any CPU
    assert not float32_lstm(brain).bfloat16
