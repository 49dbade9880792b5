"""Segment vectors made from the listening pass's measures (segment_features.py), against the
encoder's own vectors of the segments' audio."""

from __future__ import annotations

import numpy as np
import pytest

from persona_cli.audio import SAMPLE_RATE, load_audio
from persona_cli.diarization import Turn, diarize, listen
from persona_cli.encoders import load_encoder
from persona_cli.encoders.ge2e import GE2E_DIM, load_ge2e_layers
from persona_cli.encoders.prosody import HOP as PROSODY_HOP, ProsodyEncoder
from persona_cli.segment_features import HeardFeatures, SegmentRecipe
from tests.test_diarization import conversation  # noqa: F401  (the fixture)


class _Collected:
    """A FeatureSink that keeps what it is given."""

    keeps_layers = True

    def __init__(self) -> None:
        self.prosody = ProsodyEncoder()
        self.features: list = []

    def add(self, features) -> None:
        self.features.append(features)


@pytest.fixture(scope="module")
def default_encoder():
    return load_encoder("ge2e-layers+prosody")


def _chunks(wave: np.ndarray, seconds: float) -> list[np.ndarray]:
    step = round(seconds * SAMPLE_RATE)
    return [wave[i : i + step] for i in range(0, len(wave), step)]


@pytest.mark.parametrize("workers", [0, 2])
def test_every_prosody_frame_is_measured_once_across_chunk_edges(conversation, workers):  # noqa: F811
    """Chunk by chunk, the frames are those of the whole recording, none twice and none missing."""
    path, _ = conversation
    wave = load_audio(path)[: 25 * SAMPLE_RATE]
    sink = _Collected()
    listening = listen(_chunks(wave, 7.3), load_ge2e_layers(), workers=workers, sink=sink)
    firsts = [f.first_frame for f in sink.features]
    counts = [f.measures.shape[1] for f in sink.features]
    assert firsts[0] == 0
    assert all(first + count == after for first, count, after in zip(firsts, counts, firsts[1:]))
    heard = np.concatenate([f.measures for f in sink.features], axis=1)
    np.testing.assert_allclose(heard, sink.prosody.frame_measures(wave), rtol=1e-4, atol=1e-3)
    moments = np.concatenate([f.moments for f in sink.features])
    assert moments.shape == (len(listening.window_centres_s), 4 * GE2E_DIM)


def test_a_segments_prosody_is_the_encoders_of_its_audio(conversation, default_encoder):  # noqa: F811
    path, _ = conversation
    wave = load_audio(path)
    recipe = SegmentRecipe.of(default_encoder)
    assert recipe is not None and recipe.rest is None
    heard = HeardFeatures(recipe)
    try:
        listening = listen(_chunks(wave, 30), recipe.listener, sink=heard)
        for first_frame, frames in [(50, 150), (1480, 200), (1400, 400)]:  # inside, and across the 30 s edge
            turn = Turn(first_frame * PROSODY_HOP / SAMPLE_RATE, (first_frame + frames) * PROSODY_HOP / SAMPLE_RATE, 0)
            vector = heard.vector(listening, turn, None)
            audio = wave[round(turn.start_s * SAMPLE_RATE) : round(turn.end_s * SAMPLE_RATE)]
            np.testing.assert_allclose(
                vector[-recipe.prosody.dim :], recipe.prosody.embed([audio])[0], rtol=1e-3, atol=1e-3
            )
    finally:
        heard.close()


def test_segment_vectors_from_the_listening_pass_agree_with_the_encoders(conversation, default_encoder):  # noqa: F811
    """The GE2E columns come from the recording's windows, not the segment alone: not equal, but
    close, and a segment's embedding is nearer its own audio's than any other segment's."""
    path, _ = conversation
    wave = load_audio(path)
    recipe = SegmentRecipe.of(default_encoder)
    heard = HeardFeatures(recipe)
    try:
        listening = listen(_chunks(wave, 30), recipe.listener, sink=heard)
        turns = [t for t in diarize(listening) if t.duration_s > 2]
        vectors = np.stack([heard.vector(listening, turn, None) for turn in turns])
    finally:
        heard.close()
    audio = [wave[round(t.start_s * SAMPLE_RATE) : round(t.end_s * SAMPLE_RATE)] for t in turns]
    own = default_encoder.embed(audio)
    assert vectors.shape == own.shape
    embeddings = vectors[:, :GE2E_DIM] @ own[:, :GE2E_DIM].T
    assert np.all(np.diag(embeddings) > 0.9)
    assert np.mean(embeddings.argmax(axis=1) == np.arange(len(turns))) > 0.5
    # the layer statistics: about 15 % apart from its own audio's, and nearer those than any other's
    stats = slice(GE2E_DIM, GE2E_DIM + 4 * GE2E_DIM)
    apart = np.linalg.norm(vectors[:, None, stats] - own[None, :, stats], axis=2)
    relative = apart / np.linalg.norm(own[None, :, stats], axis=2)
    assert np.median(np.diag(relative)) < 0.25
    np.testing.assert_array_equal(apart.argmin(axis=1), np.arange(len(turns)))


def test_an_encoders_other_parts_keep_their_place_in_the_vector(conversation):  # noqa: F811
    encoder = load_encoder("ge2e+mfcc+prosody")
    recipe = SegmentRecipe.of(encoder)
    assert recipe is not None and recipe.rest is encoder.parts[1]
    path, _ = conversation
    heard = HeardFeatures(recipe)
    try:
        listening = listen(_chunks(load_audio(path), 30), recipe.listener, sink=heard)
        turn = Turn(1.0, 3.0, 0)
        rest = np.arange(encoder.parts[1].dim, dtype=np.float32)
        vector = heard.vector(listening, turn, rest)
    finally:
        heard.close()
    dims = np.cumsum([part.dim for part in encoder.parts])
    assert vector.shape == (encoder.dim,)
    np.testing.assert_array_equal(vector[dims[0] : dims[1]], rest)
    assert abs(np.linalg.norm(vector[: dims[0]]) - 1) < 1e-5  # the GE2E embedding, first


@pytest.mark.parametrize("name", ["mfcc", "prosody", "ge2e+ge2e-layers"])
def test_encoders_without_one_ge2e_network_embed_every_segment_from_its_audio(name):
    assert SegmentRecipe.of(load_encoder(name)) is None


def _random_model(encoder_name: str, folder) -> str:
    import torch

    from persona_cli.model import ModelMetadata, PersonaModel, build_network

    encoder = load_encoder(encoder_name)
    metadata = ModelMetadata(
        encoder=encoder_name, encoder_dim=encoder.dim, encoder_revision=encoder.revision, head="fcn"
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = build_network(metadata)
    return str(PersonaModel(network, metadata).save(folder / f"{encoder_name}.safetensors"))


@pytest.mark.parametrize(
    "encoder_name",
    ["mfcc", "ge2e+mfcc", "ge2e-layers"],
    ids=["two readings (no GE2E part)", "one more reading for mfcc", "no second reading"],
)
def test_every_way_of_making_segment_vectors_gives_the_same_turns_and_a_prediction_each(
    conversation,  # noqa: F811
    encoder_name,
    tmp_path,
):
    from persona_cli.predictor import Predictor

    path, _ = conversation
    default = list(Predictor(workers=0).predict_segments([path]))
    other = list(Predictor(model=_random_model(encoder_name, tmp_path), workers=0).predict_segments([path]))
    assert [(s.start_s, s.end_s, s.speaker) for s in other] == [(s.start_s, s.end_s, s.speaker) for s in default]
    assert all(s.emotion is not None and s.gender is not None and s.error is None for s in other)
    assert {s.encoder for s in other} == {encoder_name}


def test_a_turn_no_listening_window_reaches_is_embedded_from_its_own_audio(conversation, tmp_path):  # noqa: F811
    """A lone word between long pauses has no window (windows need half their 1.6 s to be speech),
    and a clip shorter than a window has none at all: such turns get their vector from their audio."""
    import soundfile as sf

    from persona_cli.predictor import Predictor

    path, reference = conversation
    wave = load_audio(path)
    start, end, _ = reference[0]
    word = wave[round(start * SAMPLE_RATE) : round(start * SAMPLE_RATE) + round(0.8 * SAMPLE_RATE)]
    silence = np.zeros(3 * SAMPLE_RATE, np.float32)
    lone = tmp_path / "a lone word.flac"
    sf.write(lone, np.concatenate([wave[: 20 * SAMPLE_RATE], silence, word, silence]), SAMPLE_RATE)
    short = tmp_path / "one short clip.flac"
    sf.write(
        short, wave[round(start * SAMPLE_RATE) : round(start * SAMPLE_RATE) + round(1.2 * SAMPLE_RATE)], SAMPLE_RATE
    )

    recipe = SegmentRecipe.of(load_encoder("ge2e-layers+prosody"))
    listening = listen(_chunks(load_audio(lone), 30), recipe.listener)
    last = diarize(listening)[-1]
    assert last.start_s > 23 and not HeardFeatures.reaches(listening, last)

    predictor = Predictor(workers=0)
    for recording in (lone, short):
        segments = list(predictor.predict_segments([recording]))
        assert segments and all(s.error is None and s.emotion is not None for s in segments), segments
        assert all(s.gender is not None for s in predictor.predict_speakers([recording]))
