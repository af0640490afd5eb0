"""Shared fixtures: where the real data lives, and small synthetic signals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """``$VOCALMIX_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("VOCALMIX_DATA", REPO.parent / "shared" / "data"))


def require_data(*parts: str) -> Path:
    """Path under the data root, or skip the test with the reason."""
    p = data_root().joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not found at {p} (set VOCALMIX_DATA to the shared data folder)")
    return p


def stem_songs() -> list[Path]:
    root = data_root() / "stems"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def find_stem(folder: Path, name: str) -> Path | None:
    for ext in (".wav", ".flac", ".mp3", ".ogg"):
        p = folder / f"{name}{ext}"
        if p.exists():
            return p
    return None


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def sine(freq_hz: float, db: float, dur_s: float, sr: int, channels: int = 2) -> np.ndarray:
    t = np.arange(int(round(dur_s * sr))) / sr
    x = (10 ** (db / 20) * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)
