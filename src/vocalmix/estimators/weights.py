"""The learned estimators' shipped files, read and written in one place.

Each learned model ships two files in ``vocalmix/assets``, written by ``vocalmix train``:
its weights (``.npz``: numpy arrays only, never pickled objects, with a few check rows
stored next to the predictions training computed for them) and its metadata (``.json``:
the training files and their SHA-256, seeds, date and cross-validated figures).
:class:`ModelFiles` names a model's two files; :meth:`ModelFiles.load` reads them from
the package or from a folder and turns every way they can be unusable into a
:class:`~vocalmix.core.errors.ModelError` that says how to retrain them:

* missing (either file): ``no <model> weights in <where>``;
* unreadable (not an npz, truncated, damaged, not JSON): ``... are unreadable``;
* incomplete (an expected array absent or malformed) and stale (written for other
  features): each model's ``load`` checks its arrays and raises
  :meth:`ModelFiles.incomplete` or :meth:`ModelFiles.stale`.

The bytes are read and written by :mod:`vocalmix.core.audio` (the one module that does
file I/O): :func:`~vocalmix.core.audio.load_arrays`, :func:`~vocalmix.core.audio.load_json`
and :func:`~vocalmix.core.audio.write_model_files` (atomic).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from vocalmix.core.errors import ModelError

Folder = str | os.PathLike[str] | None


@dataclass(frozen=True)
class ModelFiles:
    """The two files of one learned model.

    Attributes:
        what: the model's name in messages, e.g. ``"level model"``.
        weights: file name of the weights, ``.npz``.
        meta: file name of the metadata, ``.json``.
        only: the ``vocalmix train --only`` value that retrains the model.
    """

    what: str
    weights: str
    meta: str
    only: str

    def _where(self, folder: Folder) -> str:
        return "the package" if folder is None else str(folder)

    def _retrain(self) -> str:
        return f"retrain them with 'vocalmix train --only {self.only} --data DIR -o MODELDIR'"

    def load(self, folder: Folder = None) -> tuple[dict[str, np.ndarray], dict]:
        """The weights' arrays and the metadata, from ``folder`` or (``None``) the
        package's ``vocalmix/assets``.

        Raises :class:`ModelError` when either file is missing or unreadable.
        """
        from vocalmix.core.audio import load_arrays, load_json

        where = self._where(folder)
        try:
            arrays = load_arrays(self.weights, folder)
            meta = load_json(self.meta, folder)
        except FileNotFoundError as e:
            missing = os.path.basename(e.filename or str(e))
            raise ModelError(f"no {self.what} weights in {where} ({missing} is missing); "
                             f"{self._retrain()}") from None
        except (OSError, ValueError) as e:
            raise ModelError(f"the {self.what} weights in {where} are unreadable ({e}); "
                             f"{self._retrain()}") from None
        return arrays, meta

    def save(self, folder: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict,
             *, compressed: bool = False) -> None:
        """Write the weights and the metadata into ``folder``, each atomically."""
        from vocalmix.core.audio import write_model_files

        write_model_files(folder, self.weights, arrays, self.meta, meta, compressed=compressed)

    def incomplete(self, folder: Folder, error: Exception) -> ModelError:
        """The error for weights that lack an array or hold a malformed one."""
        return ModelError(f"the {self.what} weights in {self._where(folder)} are incomplete "
                          f"({error}); {self._retrain()}")

    def stale(self, folder: Folder, detail: str) -> ModelError:
        """The error for weights written for other features (``detail`` says which)."""
        return ModelError(f"the {self.what} weights in {self._where(folder)} are stale "
                          f"({detail}); {self._retrain()}")


__all__ = ["ModelFiles"]
