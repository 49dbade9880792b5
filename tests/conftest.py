"""Shared fixtures: where the real corpora are, and generated audio."""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports torch (its OpenMP runtime reads this once, when it loads), and inherited by
# the `persona` processes the tests start: idle OpenMP threads sleep instead of spinning. With two
# cores and another busy process, a spinning thread waits for one that is not running; the default
# run took 168 s beside one busy core with the default policy and 77 s with this one (70 s vs 76 s
# idle). Only how threads wait changes, not what they compute.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# float32 GE2E everywhere, as on a CPU without bfloat16 units: the tests hold batched and serial
# vectors, and persona's against resemblyzer's, to 1e-4, which bfloat16 products (about 1e-3) do not
# meet. The bfloat16 path has tests of its own (test_encoders.py) that ask for it explicitly.
os.environ["PERSONA_CPU_BFLOAT16"] = "0"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from persona_cli.corpora import LabelledClip
from persona_cli.labels import EMOTIONS, GENDERS

REPO_ROOT = Path(__file__).resolve().parents[1]
#: real corpora (listed in its README.md) kept beside the checkout, never in it
SHARED_DATA = Path(os.environ.get("PERSONA_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
SAMPLE_AUDIO = REPO_ROOT / "sample_audio"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's downloads and embedding caches out of the user's real cache."""
    monkeypatch.setenv("PERSONA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "persona-cache"))


def require_shared(*parts: str) -> Path:
    """Path inside ../shared/data, skipping the test where that corpus is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real corpus not available: {path}")
    return path


def touch(folder: Path, *names: str) -> list[Path]:
    """Empty files with these names in `folder`: corpus readers look at names only, never decode."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in names]
    for path in paths:
        path.touch()
    return paths


def assert_well_formed(clips: list[LabelledClip], corpus: str) -> None:
    """Clips of one reader: its corpus name, qualified speakers, known labels, sorted existing paths."""
    for clip in clips:
        assert clip.corpus == corpus
        assert clip.speaker.startswith(f"{corpus}:") and len(clip.speaker) > len(corpus) + 1
        assert clip.emotion in (*EMOTIONS, None)
        assert clip.gender in (*GENDERS, None)
        assert clip.age is None or 0 < clip.age < 120
        assert clip.path.is_file()
    assert [c.path for c in clips] == sorted(c.path for c in clips)


def voice_like(seconds: float, sample_rate: int = 16_000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A harmonic, amplitude-modulated tone with a little noise: speech-like enough for encoders."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    wave = 0.3 * envelope * wave / np.max(np.abs(wave)) + 0.01 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random-weight checkpoint on the mfcc encoder, for `--model`: for tests of the machinery around
    the model (resume, signals, streamed output), where what it predicts does not matter. mfcc embeds
    a short clip in about 2 ms, the bundled model's default encoder in about 18 ms."""
    import torch

    from persona_cli.encoders import load_encoder
    from persona_cli.model import ModelMetadata, PersonaModel, build_network

    encoder = load_encoder("mfcc", device="cpu")
    metadata = ModelMetadata(encoder="mfcc", encoder_dim=encoder.dim, encoder_revision=encoder.revision, head="fcn")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = build_network(metadata)
    return PersonaModel(network, metadata).save(tmp_path_factory.mktemp("tiny-model") / "persona-mfcc-tiny.safetensors")


@pytest.fixture
def ravdess_clips() -> list[Path]:
    """A handful of real RAVDESS FLAC clips (mixed actors and emotions)."""
    root = require_shared("ravdess")
    return sorted(root.glob("Actor_0[1-4]/*.flac"))[::12][:8]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process like the console script does; returns (exit code, stdout, stderr)."""
    from persona_cli.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err
