"""The level model's inference: small linear heads run with numpy, weights shipped in the
package.

What it predicts
    From level-invariant features (:mod:`vocalmix.estimators.features`) of 6 s excerpts
    of the vocal and the backing, two *heads* (one linear model each, :class:`RidgeHead`):

    * ``vocal_to_mix_lu``: the human mix's vocal-to-mix ratio **while the vocal sings**
      (:data:`LEVEL_MEASURE`, ``singing``: the vocal's loudness against the mix's over
      the 400 ms blocks that pass the vocal's own BS.1770-4 gates while the backing
      plays;
      :func:`vocalmix.core.measure.singing_ratio_from_segments`), LU. Engineers set the
      balance a listener hears while the voice sings; over a whole song the integrated
      ratio also depends on how loud the instrumental passages are, which says nothing
      about that balance. The level provider writes this measure into
      ``targets.vocal_to_mix_measure`` and the resolver solves for it, so the training
      truth, the model's target and the resolver use one definition.
    * ``vocal_lra_log_ratio``: ``ln((LRA_mixed + 1) / (LRA_input + 1))``, how much the
      mixing engineer's dynamics processing shrank the vocal's loudness range (EBU Tech
      3342) relative to a raw take. The predicted target is
      ``(LRA_input + 1) * exp(prediction) - 1`` with ``LRA_input`` the loudness range of
      the whole input vocal.

    The vocal-to-mix head also exists with a genre term (:attr:`LevelModel.genre_heads`):
    when the caller knows the song's genre (one of MUSDB18's :data:`GENRES` or
    ``other``), a per-genre offset learned from the training songs, shrunk toward zero,
    is added to a head fitted jointly with it; ``other`` (or a genre no training song
    had) adds nothing.

    Per-excerpt predictions are averaged over up to :data:`MAX_EXCERPTS` excerpts in
    which the vocal sings (:func:`vocalmix.estimators.features.vocal_excerpts`), the same
    rule the training examples were cut by. Each head clips its features to the range
    seen in training (no linear extrapolation).

How it is fitted and how well it does: :mod:`vocalmix.training.level` and
``docs/evaluation/report.md``.

Files (:data:`FILES`): ``assets/level_model.npz`` (per head: feature names, means,
scales, coefficients, intercept, penalties, training range, genre offsets; check rows
with the predictions training computed for them) and ``assets/level_model.json``
(training files and their SHA-256, genres, seeds, cross-validated metrics), written by
``vocalmix train``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from vocalmix.core.dsp import LruCache, content_key, frozen
from vocalmix.core.errors import ParamsError
from vocalmix.core.measure import BlockStats
from vocalmix.estimators.features import (
    FEATURE_NAMES,
    FEATURE_VERSION,
    Voicing,
    backing_part,
    excerpt_energies,
    features,
    vocal_excerpts,
    voicing_of_rows,
)
from vocalmix.estimators.weights import ModelFiles

FILES = ModelFiles("level model", "level_model.npz", "level_model.json", "level")
TARGETS = ("vocal_to_mix_lu", "vocal_lra_log_ratio")
#: heads that also exist with a genre term
GENRE_TARGETS = ("vocal_to_mix_lu",)
#: how the vocal-to-mix target is measured (``targets.vocal_to_mix_measure``)
LEVEL_MEASURE = "singing"
#: MUSDB18's genre labels; ``other`` is any genre not among them
GENRES = ("Country", "Electronic", "Heavy Metal", "Jazz", "Pop", "Pop/Rock", "Rap",
          "Reggae", "Rock", "Singer/Songwriter")
OTHER_GENRE = "other"
MAX_EXCERPTS = 16
EXCERPT_S, HOP_S = 6.0, 3.0
_GENRE_PREFIX = "genre+"


def normalise_genre(genre: str | None) -> str | None:
    """The canonical spelling of ``genre`` (one of :data:`GENRES` or ``other``, matched
    without regard to case and surrounding spaces), ``None`` for ``None`` or ``""``.

    Raises :class:`~vocalmix.core.errors.ParamsError` for any other name, listing the
    accepted ones.
    """
    if genre is None or not str(genre).strip():
        return None
    key = " ".join(str(genre).split()).lower()
    for g in (*GENRES, OTHER_GENRE):
        if g.lower() == key:
            return g
    raise ParamsError(f"unknown genre {genre!r}: use one of {', '.join(GENRES)} or "
                      f"{OTHER_GENRE!r}")


def lra_from_ratio(lra_input_lu: float, log_ratio: float) -> float:
    """Target vocal LRA (LU) from the input's LRA and a predicted log ratio."""
    return float((max(lra_input_lu, 0.0) + 1.0) * np.exp(log_ratio) - 1.0)


def lra_log_ratio(lra_mixed_lu: float, lra_input_lu: float) -> float:
    """``ln((LRA_mixed + 1) / (LRA_input + 1))`` (the LRA head's training target; the
    inverse of :func:`lra_from_ratio`)."""
    return float(np.log((max(lra_mixed_lu, 0.0) + 1.0) / (max(lra_input_lu, 0.0) + 1.0)))


# --- linear heads -----------------------------------------------------------------------


@dataclass(frozen=True)
class RidgeHead:
    """One penalised linear model on a subset of the features, with optional genre
    offsets.

    ``prediction = ((clip(x[features], lo, hi) - mean) / scale) @ coef + intercept
    (+ genre_coef[genre])``: features are clipped to the range seen in training, so a
    song unlike every training song is not extrapolated linearly into an absurd
    balance. ``loss`` (``squared`` or ``huber`` with ``huber_delta`` LU) and the
    penalties ``alpha`` and ``genre_alpha`` (in songs) document how it was fitted.
    """

    target: str
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    alpha: float
    lo: np.ndarray
    hi: np.ndarray
    loss: str = "squared"
    huber_delta: float = 0.0
    genres: tuple[str, ...] = ()
    genre_coef: np.ndarray = field(default_factory=lambda: np.zeros(0))
    genre_alpha: float = 0.0

    def columns(self) -> np.ndarray:
        """Indices of this head's features in :data:`FEATURE_NAMES`."""
        return np.array([FEATURE_NAMES.index(f) for f in self.features], dtype=int)

    def genre_offset(self, genre: str | None) -> float:
        """The offset of ``genre`` (0 for ``None``, ``other`` or a genre not trained)."""
        if genre is None or genre not in self.genres:
            return 0.0
        return float(self.genre_coef[self.genres.index(genre)])

    def predict(self, x: np.ndarray, genre: str | None = None) -> np.ndarray:
        """Predictions ``(n,)`` for full feature rows ``(n, len(FEATURE_NAMES))``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))[:, self.columns()]
        x = np.clip(x, self.lo, self.hi)
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept + \
            self.genre_offset(genre)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The head as named arrays (for the ``.npz``)."""
        return {f"{prefix}.features": np.array(self.features), f"{prefix}.mean": self.mean,
                f"{prefix}.scale": self.scale, f"{prefix}.coef": self.coef,
                f"{prefix}.intercept": np.array(self.intercept),
                f"{prefix}.alpha": np.array(self.alpha), f"{prefix}.lo": self.lo,
                f"{prefix}.hi": self.hi, f"{prefix}.loss": np.array(self.loss),
                f"{prefix}.huber_delta": np.array(self.huber_delta),
                f"{prefix}.genres": np.array(self.genres, dtype=str),
                f"{prefix}.genre_coef": np.asarray(self.genre_coef, dtype=np.float64),
                f"{prefix}.genre_alpha": np.array(self.genre_alpha)}

    @staticmethod
    def from_arrays(target: str, d: dict[str, np.ndarray], prefix: str) -> RidgeHead:
        """Inverse of :meth:`arrays` (``KeyError``/``ValueError`` when incomplete)."""
        return RidgeHead(target, tuple(str(f) for f in d[f"{prefix}.features"]),
                         d[f"{prefix}.mean"], d[f"{prefix}.scale"], d[f"{prefix}.coef"],
                         float(d[f"{prefix}.intercept"]), float(d[f"{prefix}.alpha"]),
                         d[f"{prefix}.lo"], d[f"{prefix}.hi"], str(d[f"{prefix}.loss"]),
                         float(d[f"{prefix}.huber_delta"]),
                         tuple(str(g) for g in d[f"{prefix}.genres"]),
                         np.asarray(d[f"{prefix}.genre_coef"], dtype=np.float64),
                         float(d[f"{prefix}.genre_alpha"]))


@dataclass(frozen=True)
class LevelModel:
    """The heads (:data:`TARGETS`), the genre heads (:data:`GENRE_TARGETS`, may be
    empty), the feature version they were trained on, and the metadata training wrote
    (empty for a model not loaded from files)."""

    heads: dict[str, RidgeHead]
    genre_heads: dict[str, RidgeHead] = field(default_factory=dict)
    feature_version: int = FEATURE_VERSION
    feature_names: tuple[str, ...] = FEATURE_NAMES
    meta: dict = field(default_factory=dict, compare=False, repr=False)

    def head(self, target: str, genre: str | None = None) -> RidgeHead:
        """The head that predicts ``target``: the genre head when a genre is given and
        one exists."""
        if genre is not None and target in self.genre_heads:
            return self.genre_heads[target]
        return self.heads[target]

    def predict(self, x: np.ndarray, genre: str | None = None) -> dict[str, np.ndarray]:
        """Per-head predictions ``(n,)`` for feature rows ``(n, len(FEATURE_NAMES))``;
        ``genre``: a canonical genre (:func:`normalise_genre`) or ``None``."""
        return {t: self.head(t, genre).predict(x, genre) for t in self.heads}

    def predict_matrix(self, x: np.ndarray, genre: str | None = None) -> np.ndarray:
        """Predictions ``(n, len(TARGETS))`` in :data:`TARGETS` order."""
        p = self.predict(x, genre)
        return np.stack([p[t] for t in TARGETS], axis=1)

    def save(self, folder: str | Path, meta: dict, check_x: np.ndarray | None = None,
             check_genres: tuple[str, ...] = ()) -> None:
        """Write ``level_model.npz`` and ``level_model.json`` (``meta``) into ``folder``.

        ``check_x``: a few training feature rows stored with their predictions (without
        a genre, and with each of ``check_genres``), so that a loaded model can be
        checked against what training computed.
        """
        arrays: dict[str, np.ndarray] = {
            "feature_version": np.array(self.feature_version),
            "feature_names": np.array(self.feature_names),
            "targets": np.array(TARGETS),
            "genre_targets": np.array(tuple(self.genre_heads), dtype=str),
        }
        for t, h in self.heads.items():
            arrays.update(h.arrays(t))
        for t, h in self.genre_heads.items():
            arrays.update(h.arrays(_GENRE_PREFIX + t))
        if check_x is not None:
            arrays["check_x"] = np.asarray(check_x, dtype=np.float64)
            arrays["check_y"] = self.predict_matrix(check_x)
            arrays["check_genres"] = np.array(check_genres, dtype=str)
            for i, g in enumerate(check_genres):
                arrays[f"check_y_genre{i}"] = self.predict_matrix(check_x, g)
        FILES.save(folder, arrays, meta)

    @staticmethod
    def load(folder: str | Path | None = None) -> LevelModel:
        """Load from ``folder`` (default: the package's shipped weights).

        Raises :class:`~vocalmix.core.errors.ModelError` when the files are missing,
        unreadable, incomplete, or were written for another feature version, feature
        list or set of heads (stale).
        """
        d, meta = FILES.load(folder)
        try:
            version = int(d["feature_version"])
            names = tuple(str(n) for n in d["feature_names"])
            targets = tuple(str(s) for s in d["targets"])
            heads = {t: RidgeHead.from_arrays(t, d, t) for t in targets}
            genre_heads = {str(t): RidgeHead.from_arrays(str(t), d, _GENRE_PREFIX + str(t))
                           for t in d["genre_targets"]}
        except (KeyError, ValueError, TypeError) as e:
            raise FILES.incomplete(folder, e) from None
        if version != FEATURE_VERSION or names != FEATURE_NAMES:
            raise FILES.stale(folder, f"trained on feature version {version}, this vocalmix "
                                      f"computes version {FEATURE_VERSION}")
        if set(heads) != set(TARGETS) or not set(genre_heads) <= set(GENRE_TARGETS):
            raise FILES.stale(folder, f"heads {', '.join(sorted(heads))}, this vocalmix "
                                      f"uses {', '.join(TARGETS)}")
        return LevelModel(heads, genre_heads, version, names, meta)


# --- inference on a whole song ----------------------------------------------------------


#: the backing's share of an excerpt's features (:func:`~vocalmix.estimators.features.
#: backing_part`, a few KB) by the backing's content and the excerpt's window: the takes
#: of a batch or a server over one instrumental mostly sing in the same windows
_BACKING_PARTS = LruCache(64)


def excerpt_features(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
                     max_excerpts: int | None = MAX_EXCERPTS) -> np.ndarray:
    """Feature rows of the excerpts of a song in which the vocal sings. The backing's
    share of each row is remembered by the content of a read-only backing
    (:func:`~vocalmix.core.dsp.frozen`) and the excerpt's window."""
    # read-only views for the whole signals' measurements: each is hashed once and its
    # segment energies, which choosing the excerpts measures, are then looked up for the
    # excerpts' loudness figures instead of measured again
    seen_v, seen_b = frozen(vocal), frozen(backing)
    wins = vocal_excerpts(seen_v, sample_rate, EXCERPT_S, HOP_S, max_excerpts,
                          backing=seen_b)
    base = (content_key(backing, sample_rate, "level backing part", FEATURE_VERSION)
            if not np.asarray(backing).flags.writeable else None)
    whole_v, whole_b = BlockStats.of(seen_v, sample_rate), BlockStats.of(seen_b, sample_rate)

    def row(w: slice) -> np.ndarray:
        ev = excerpt_energies(whole_v.energy, whole_v.segment_len, w)
        eb = excerpt_energies(whole_b.energy, whole_b.segment_len, w)
        if base is None:
            return features(vocal[w], backing[w], sample_rate, energy=ev,
                            backing_energy=eb)
        part = _BACKING_PARTS.get_or_make(
            (base, w.start, w.stop),
            lambda: backing_part(backing[w], sample_rate, energy=eb))
        return features(vocal[w], backing[w], sample_rate, part=part, energy=ev)

    if len(wins) < 2:
        return np.stack([row(w) for w in wins])
    from concurrent.futures import ThreadPoolExecutor

    # the excerpts are independent and their FFTs, filters and resampling release the
    # GIL: two threads (the rows come back in order, each computed as before)
    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(row, wins))
    return np.stack(rows)


@dataclass(frozen=True)
class LevelPrediction:
    """The level model's targets for one song.

    Attributes:
        vocal_to_mix_lu: vocal-to-mix ratio while the vocal sings (:data:`LEVEL_MEASURE`),
            mean over the excerpts, LU. Not clipped.
        vocal_lra_lu: target vocal loudness range, LU. Not clipped.
        input_lra_lu: loudness range of the whole input vocal, LU.
        n_excerpts: excerpts the prediction averages.
        genre: the genre used (canonical), ``None`` when none was given.
        measure: how ``vocal_to_mix_lu`` is measured (``singing``).
        voicing: how much pitched voice the excerpts hold, read from their features
            (:func:`~vocalmix.estimators.features.voicing_of_rows`; :func:`predict_song`
            sets it), or ``None``.
    """

    vocal_to_mix_lu: float
    vocal_lra_lu: float
    input_lra_lu: float
    n_excerpts: int
    genre: str | None = None
    measure: str = LEVEL_MEASURE
    voicing: Voicing | None = None


def predict_from_features(model: LevelModel, x: np.ndarray, lra_input_lu: float,
                          genre: str | None = None) -> LevelPrediction:
    """Song-level targets from excerpt feature rows ``x``, the whole input vocal's LRA
    (LU) and the song's genre (any spelling :func:`normalise_genre` accepts, or
    ``None``)."""
    g = normalise_genre(genre)
    p = model.predict(x, g)
    return LevelPrediction(
        vocal_to_mix_lu=float(p["vocal_to_mix_lu"].mean()),
        vocal_lra_lu=lra_from_ratio(lra_input_lu, float(p["vocal_lra_log_ratio"].mean())),
        input_lra_lu=float(lra_input_lu),
        n_excerpts=int(len(np.atleast_2d(x))),
        genre=g,
    )


def predict_song(model: LevelModel, vocal: np.ndarray, backing: np.ndarray,
                 sample_rate: int, genre: str | None = None) -> LevelPrediction:
    """The model's targets for a whole input pair (numpy only); see
    :func:`predict_from_features`. ``genre``: MUSDB18's name of the song's genre,
    ``other``, or ``None`` (unknown)."""
    from vocalmix.core.measure import level_free_loudness_range

    g = normalise_genre(genre)  # an unknown name fails before the analysis
    x = excerpt_features(vocal, backing, sample_rate)
    p = predict_from_features(model, x, level_free_loudness_range(vocal, sample_rate), g)
    return replace(p, voicing=voicing_of_rows(x))


# --- the shipped model ------------------------------------------------------------------


@lru_cache(maxsize=1)
def shipped_model() -> LevelModel:
    """The shipped level model, loaded once; :class:`~vocalmix.core.errors.ModelError`
    when missing or stale."""
    return LevelModel.load()


__all__ = [
    "FILES",
    "GENRES",
    "GENRE_TARGETS",
    "LEVEL_MEASURE",
    "OTHER_GENRE",
    "LevelPrediction",
    "TARGETS",
    "LevelModel",
    "RidgeHead",
    "excerpt_features",
    "lra_from_ratio",
    "lra_log_ratio",
    "normalise_genre",
    "predict_from_features",
    "predict_song",
    "shipped_model",
]
