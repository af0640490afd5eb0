"""The professionally mixed songs as training material for the vocal models.

The corrective EQ, the dynamics model and the reverb choice model learn what a *finished*
vocal is like from the songs whose vocal and backing stems are the mixing engineers' own
(:func:`vocalmix.training.data.find_songs` with level information: MUSDB18-HQ folders,
``.stem.mp4`` files, manifests). :func:`mixed_songs` lists them with their artist (the
unit every cross-validation here holds out whole: several songs share an artist, e.g.
Music Delta's seven) and marks MUSDB18's test-split songs, which are never trained or
tuned on (:func:`training_songs` leaves them out; reports may show them apart).
:func:`artist_folds` deals artists into seeded folds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocalmix.training.data import MUSDB18_TEST_SONGS, Song, artist_of, find_songs


@dataclass(frozen=True)
class MixedSong:
    """A professionally mixed song: its :class:`vocalmix.training.data.Song`, artist,
    genre and whether it is one of MUSDB18's test songs."""

    song: Song
    artist: str
    genre: str
    test_split: bool

    @property
    def song_id(self) -> str:
        return self.song.song_id


def mixed_songs(folders: Iterable[str | Path]) -> list[MixedSong]:
    """Every song under ``folders`` whose stems are a professional mix (level
    information), sorted by id, with the artist, catalogue genre and test-split mark
    :func:`~vocalmix.training.data.find_songs` gives them."""
    out = [MixedSong(s, s.artist, s.genre, s.test_split)
           for s in find_songs([str(f) for f in folders]) if s.has_level_info]
    return sorted(out, key=lambda m: m.song_id)


def training_songs(folders: Iterable[str | Path]) -> list[MixedSong]:
    """:func:`mixed_songs` without MUSDB18's test songs (never trained or tuned on)."""
    return [m for m in mixed_songs(folders) if not m.test_split]


def artist_folds(artists: Iterable[str], n_folds: int = 5, seed: int = 0
                 ) -> list[np.ndarray]:
    """Boolean test masks over items whose artist is ``artists[i]``: the distinct artists
    shuffled by ``seed`` and dealt into ``n_folds`` folds (fewer when there are fewer
    artists), so no artist is on both sides of a split."""
    a = np.asarray(list(artists))
    uniq = sorted(set(a.tolist()))
    order = np.random.default_rng(seed).permutation(len(uniq))
    k = max(1, min(n_folds, len(uniq)))
    fold_of = {uniq[j]: n % k for n, j in enumerate(order)}
    labels = np.array([fold_of[x] for x in a.tolist()])
    return [labels == f for f in range(k)]


__all__ = ["MUSDB18_TEST_SONGS", "MixedSong", "artist_folds", "artist_of",
           "mixed_songs", "training_songs"]
