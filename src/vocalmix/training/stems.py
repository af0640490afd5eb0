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

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: MUSDB18's test split (the 50 songs of its ``test`` folder, as the ``musdb`` package
#: and sigsep's track list split it). Three of them are the shared data's ``stems/``.
MUSDB18_TEST_SONGS: frozenset[str] = frozenset({
    "Al James - Schoolboy Facination", "AM Contra - Heart Peripheral",
    "Angels In Amplifiers - I'm Alright", "Arise - Run Run Run",
    "Ben Carrigan - We'll Talk About It All Tonight", "BKS - Bulldozer", "BKS - Too Much",
    "Bobby Nobody - Stitch Up", "Buitraker - Revo X", "Carlos Gonzalez - A Place For Us",
    "Cristina Vane - So Easy", "Detsky Sad - Walkie Talkie",
    "Enda Reilly - Cur An Long Ag Seol", "Forkupines - Semantics", "Georgia Wonder - Siren",
    "Girls Under Glass - We Feel Alright", "Hollow Ground - Ill Fate",
    "James Elder & Mark M Thompson - The English Actor", "Juliet's Rescue - Heartbeats",
    "Little Chicago's Finest - My Own", "Louis Cressy Band - Good Time",
    "Lyndsey Ollard - Catching Up", "M.E.R.C. Music - Knockout",
    "Moosmusic - Big Dummy Shake", "Motor Tapes - Shore", "Mu - Too Bright",
    "Nerve 9 - Pray For The Rain", "PR - Happy Daze", "PR - Oh No",
    "Punkdisco - Oral Hygiene", "Raft Monk - Tiring", "Sambasevam Shanmugam - Kaathaadi",
    "Secretariat - Borderline", "Secretariat - Over The Top",
    "Side Effects Project - Sing With Me", "Signe Jakobsen - What Have You Done To Me",
    "Skelpolu - Resurrection", "Speak Softly - Broken Man", "Speak Softly - Like Horses",
    "The Doppler Shift - Atrophy", "The Easton Ellises (Baumi) - SDRNR",
    "The Easton Ellises - Falcon 69", "The Long Wait - Dark Horses",
    "The Mountaineering Club - Mallory", "The Sunshine Garcia Band - For I Am The Moon",
    "Timboz - Pony", "Tom McKenzie - Directions", "Triviul feat. The Fiend - Widow",
    "We Fell From The Sky - Not You", "Zeno - Signs",
})


def artist_of(song_id: str) -> str:
    """The artist of a song id ``Artist - Title`` as a grouping key: lower case, without
    a ``feat.``/``ft.`` guest or a parenthesised remixer. Ids without `` - `` are their
    own artist."""
    name = song_id.split(" - ", 1)[0] if " - " in song_id else song_id
    name = re.split(r"\s+(?:feat\.?|ft\.?|featuring)\s+", name, maxsplit=1,
                    flags=re.IGNORECASE)[0]
    name = re.sub(r"\s*\(.*?\)\s*", " ", name)
    return " ".join(name.lower().split())


def genre_of(song_id: str, folders: Iterable[str | Path]) -> str:
    """MUSDB18's genre label for a song from a ``tracks.csv`` (columns ``song``,
    ``genre``) in or above the folders given; ``unknown`` when none names it."""
    import csv

    for folder in folders:
        p = Path(folder)
        for d in (p, *list(p.parents)[:2]):
            cat = d / "tracks.csv"
            if cat.is_file():
                try:
                    with open(cat, newline="", encoding="utf-8") as f:
                        for r in csv.DictReader(f):
                            if (r.get("song") or "").strip() == song_id:
                                return (r.get("genre") or "unknown").strip() or "unknown"
                except (OSError, UnicodeDecodeError, csv.Error):
                    continue
    return "unknown"


@dataclass(frozen=True)
class MixedSong:
    """A professionally mixed song: its :class:`vocalmix.training.data.Song`, artist,
    genre and whether it is one of MUSDB18's test songs."""

    song: object  # vocalmix.training.data.Song
    artist: str
    genre: str
    test_split: bool

    @property
    def song_id(self) -> str:
        return str(self.song.song_id)  # type: ignore[attr-defined]


def mixed_songs(folders: Iterable[str | Path]) -> list[MixedSong]:
    """Every song under ``folders`` whose stems are a professional mix (level
    information), sorted by id, with artist, genre and test-split mark."""
    from vocalmix.training.data import find_songs

    folders = [str(f) for f in folders]
    out = []
    for s in find_songs(folders):
        if not s.has_level_info:
            continue
        out.append(MixedSong(s, artist_of(s.song_id), genre_of(s.song_id, folders),
                             s.song_id in MUSDB18_TEST_SONGS))
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


__all__ = ["MUSDB18_TEST_SONGS", "MixedSong", "artist_folds", "artist_of", "genre_of",
           "mixed_songs", "training_songs"]
