"""Mix folders: ids, private storage, persisted job states, expiry.

Layout of the storage root (``0700``, owned by the user running the server; a symlink or
a folder of another user is refused)::

    <root>/.lock                 held (shared) by every server using this root
    <root>/<id>/                 one mix, 0700, id = secrets.token_urlsafe(18)
        meta.json                status (mixing, done, failed), stage, revision, error...
        upload_vocal|backing     the raw uploads, until decoded
        backing_upload           the backing's raw upload, kept once decoded: a later
                                 mix may use it (``backing_from``) instead of a file
        vocal_in.wav, backing_in.wav   the decoded inputs (32-bit float)
        analysis.json            the masking analysis of the inputs (cached)
        r<N>/                    revision N: mix.wav vocal.wav vocal_dry.wav backing.wav
                                 peaks.json params.json stems.json [plain.wav]
                                 (a stem unchanged since revision N-1 is a hard link
                                 to its file there: stems.json names what each was
                                 made from)

A render writes a new ``r<N+1>`` folder completely, then ``meta.json`` (atomically) makes
it current, so a reader sees all of one revision or all of the next, never a mix of the
two; the revision before is kept for readers still streaming it, older ones are removed.

**Job states are persisted** in ``meta.json``: a mix is ``mixing`` from upload to result,
a re-render marks its ``job``. A server that starts while no other server holds the root
(:meth:`Store.recover`) turns every mix left ``mixing`` into ``failed`` (code
``job.interrupted``) and drops half-written revisions, so nothing stays "mixing" forever
after a kill.

**Expiry**: a mix whose folder has not changed for the time to live is gone: every read
checks its age (:meth:`Store.path`), and :meth:`Store.sweep` removes expired folders in
the background. A mix with a job queued or running is never expired.

Every file is opened without following symlinks and must be a regular file owned by the
server's user: a link planted in a mix folder is not served.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vocalmix.core.audio import write_text
from vocalmix.core.errors import OutputError
from vocalmix.frontends.server.errors import ApiError, not_found

ID_RE = re.compile(r"[A-Za-z0-9_-]{24}")  # secrets.token_urlsafe(18): 24 characters
REV_RE = re.compile(r"r([0-9]{1,9})")
TRASH_PREFIX = ".removing-"
LOCK_NAME = ".lock"
#: largest JSON file of a mix folder read back, bytes
MAX_JSON_BYTES = 8 * 2**20
#: the kept raw upload of a mix's backing (see the layout above)
BACKING_UPLOAD = "backing_upload"

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def default_root() -> Path:
    """``$VOCALMIX_STORAGE``, else ``vocalmix/studio`` in the user's cache folder
    (``$XDG_CACHE_HOME``, else ``~/.cache``): private to the user, unlike the temp
    folder every user shares."""
    env = os.environ.get("VOCALMIX_STORAGE")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "vocalmix" / "studio"


def private_root(path: str | os.PathLike[str]) -> Path:
    """Make (if needed) and check the storage root: a real folder (not a symlink) owned
    by this user, mode 0700 (tightened if it was looser). Raises
    :class:`~vocalmix.core.errors.OutputError` otherwise."""
    p = Path(path).expanduser().absolute()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(p, 0o700)
        st = os.lstat(p)
    except OSError as e:
        raise OutputError(f"storage folder {p} cannot be made: {e.strerror or e}") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(f"storage folder {p} is a symbolic link; give a real folder "
                          "(another user could point it anywhere)")
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"storage folder {p} is not a folder")
    uid = _uid()
    if uid is not None and st.st_uid != uid:
        raise OutputError(f"storage folder {p} belongs to another user (uid {st.st_uid}); "
                          "give a folder of your own")
    if st.st_mode & 0o077:
        os.chmod(p, 0o700)
    return p.resolve()


class Store:
    """Mix folders under one private root, with per-id locks, live progress, pins for
    ids with work pending, expiry and recovery after a restart.

    Args:
        root: the storage folder (made private by :func:`private_root`).
        ttl_s: a mix whose folder has not changed for this long is gone, s.
    """

    def __init__(self, root: str | os.PathLike[str], ttl_s: float) -> None:
        self.root = private_root(root)
        self.ttl_s = float(ttl_s)
        self._locks: dict[str, threading.Lock] = {}
        self._progress: dict[str, dict[str, Any]] = {}
        self._pins: Counter[str] = Counter()
        self._removing: set[str] = set()  # mixes a remover waits to remove (delete_soon)
        self._guard = threading.RLock()
        self._lock_fd: int | None = None
        if fcntl is not None:
            self._lock_fd = os.open(self.root / LOCK_NAME,
                                    os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH)

    def close(self) -> None:
        """Let go of the root (another server may then recover it)."""
        with self._guard:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # --- ids and paths -------------------------------------------------------------
    def new(self) -> tuple[str, Path]:
        """A fresh unguessable id (144 random bits) and its newly made folder (0700),
        pinned until :meth:`unpin`."""
        while True:
            mid = secrets.token_urlsafe(18)
            d = self.root / mid
            try:
                os.mkdir(d, 0o700)
            except FileExistsError:  # pragma: no cover - astronomically unlikely
                continue
            self.pin(mid)
            return mid, d

    def path(self, mid: str) -> Path:
        """The folder of mix ``mid``; :class:`ApiError` 404 for a malformed, unknown,
        foreign or expired id (an expired one is removed on the spot).

        The id must match ``ID_RE`` before it touches the file system; the folder must be
        a real folder (not a symlink) owned by this user.
        """
        if not isinstance(mid, str) or not ID_RE.fullmatch(mid):
            raise not_found(str(mid))
        d = self.root / mid
        try:
            st = os.lstat(d)
        except OSError:
            raise not_found(mid) from None
        uid = _uid()
        if not stat.S_ISDIR(st.st_mode) or (uid is not None and st.st_uid != uid):
            raise not_found(mid)
        if self._expired(mid, st.st_mtime):
            self._try_remove(mid)
            raise not_found(mid)
        return d

    def _expired(self, mid: str, mtime: float, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return now - mtime > self.ttl_s and not self.pinned(mid)

    # --- locks and pins ------------------------------------------------------------
    def lock(self, mid: str) -> threading.Lock:
        """The lock of one mix (created on first use)."""
        with self._guard:
            return self._locks.setdefault(mid, threading.Lock())

    @contextlib.contextmanager
    def locked(self, mid: str) -> Iterator[Path]:
        """Hold the mix's lock; 404 if it is unknown or was removed while waiting."""
        d = self.path(mid)
        with self.lock(mid):
            if not d.is_dir():
                raise not_found(mid)
            yield d

    def pin(self, mid: str) -> None:
        """Mark ``mid`` as having work pending: not expired, not swept, not recovered."""
        with self._guard:
            self._pins[mid] += 1

    def unpin(self, mid: str) -> None:
        with self._guard:
            self._pins[mid] -= 1
            if self._pins[mid] <= 0:
                del self._pins[mid]

    def pinned(self, mid: str) -> bool:
        with self._guard:
            return self._pins[mid] > 0 if mid in self._pins else False

    # --- a backing used again -------------------------------------------------------
    def keep_backing(self, d: Path, name: str) -> None:
        """Keep the decoded backing upload of mix folder ``d`` (uploaded as ``name``) for
        later mixes (:meth:`link_backing`) instead of dropping it with the other uploads."""
        os.replace(d / "upload_backing", d / BACKING_UPLOAD)
        self.write_meta(d, backing_name=name)

    def link_backing(self, source: str, d: Path, field: str = "backing_from") -> str:
        """Give the new mix folder ``d`` the kept backing upload of mix ``source`` as its
        own ``upload_backing`` (a hard link: no copy, and it outlives the source), and
        start the source's time to live again (a backing in use is kept). Returns the
        name the backing was uploaded under.

        :class:`ApiError` 422 (``upload.backing_from``) for a malformed, unknown, foreign
        or expired id, or a mix with no backing upload to give (the demo's); 409 while
        the source is still decoding its own uploads."""
        shown = repr(source if len(source) <= 40 else source[:40] + "...")

        def refuse(why: str) -> ApiError:
            return ApiError(422, f"{field}: {why}; send the backing file itself",
                            code="upload.backing_from")

        try:
            src = self.path(source)
        except ApiError:
            raise refuse(f"no mix with id {shown} (it never existed, was deleted, or "
                         f"expired after {self.ttl_s:g} s unused)") from None
        kept = src / BACKING_UPLOAD
        if not _own_regular(_lstat(kept)):
            try:
                status = self.meta(src).get("status")
            except ApiError:
                status = None
            if status == "mixing":
                raise ApiError(409, f"{field}: mix {shown} is still decoding its backing; "
                                    "try again once it is done", code="upload.backing_from")
            raise refuse(f"mix {shown} has no uploaded backing to give (a demo's backing "
                         "is synthesised)")
        try:
            os.link(kept, d / "upload_backing", follow_symlinks=False)
        except FileNotFoundError:  # expired or deleted this moment
            raise refuse(f"mix {shown} was removed just now") from None
        with contextlib.suppress(OSError):
            os.utime(src)  # in use: its time to live starts again
        try:
            name = self.meta(src).get("backing_name")
        except ApiError:
            name = None
        return name if isinstance(name, str) else "backing"

    # --- files -----------------------------------------------------------------------
    @staticmethod
    def rev_dir(d: Path, revision: int) -> Path:
        """The folder of revision ``revision`` of mix folder ``d``."""
        return d / f"r{int(revision)}"

    def regular_file(self, p: Path) -> Path:
        """``p`` if it is a regular file owned by this user (not a symlink); else 404
        (409 if its mix is still there: a newer revision replaced it meanwhile)."""
        st = _lstat(p)
        if not _own_regular(st):
            mid = p.parent.name if ID_RE.fullmatch(p.parent.name) else p.parent.parent.name
            if st is None and (self.root / mid).is_dir():
                raise ApiError(409, "the mix changed while it was read: fetch it again",
                               code="mix.changed")
            raise not_found(mid)
        return p

    def read_json(self, d: Path, name: str) -> Any:
        """A JSON file of a mix folder, opened without following links (404 if the mix
        vanished meanwhile or the file is not a regular file; a damaged file is an
        :class:`ApiError` 500 naming it)."""
        p = d / name
        try:
            fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise not_found(d.name) from None
            self.regular_file(p)  # raises the right 404/409
            raise
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise not_found(d.name)
            raw = f.read(MAX_JSON_BYTES + 1)
        try:
            if len(raw) > MAX_JSON_BYTES:
                raise ValueError("too large")
            return json.loads(raw)
        except ValueError:
            raise ApiError(500, f"the stored {name} of this mix is damaged; delete the mix "
                                "and make it again", code="storage.damaged") from None

    def meta(self, d: Path) -> dict[str, Any]:
        """``meta.json`` of a mix folder."""
        m = self.read_json(d, "meta.json")
        if not isinstance(m, dict):
            raise ApiError(500, "the stored meta.json of this mix is damaged",
                           code="storage.damaged")
        return m

    def write_meta(self, d: Path, **changes: Any) -> dict[str, Any]:
        """Update ``meta.json`` (atomically) and return the new contents."""
        with self._guard:
            try:
                meta = self.meta(d)
            except ApiError:
                if not d.is_dir():
                    raise
                meta = {"created": time.time(), "revision": 0}
            meta.update(changes)
            meta["updated"] = time.time()
            write_text(d / "meta.json", json.dumps(meta, allow_nan=False), force=True)
            return meta

    # --- live progress of a job ---------------------------------------------------------
    def set_progress(self, mid: str, stage: str, fraction: float | None, message: str) -> None:
        """Record the stage a job reached (a dotted name), the share of the work done
        (0 to 1; ``None`` keeps the last) and a line for a person."""
        with self._guard:
            old = self._progress.get(mid, {}).get("fraction", 0.0)
            f = old if fraction is None else max(old, min(1.0, float(fraction)))
            self._progress[mid] = {"stage": stage, "fraction": f, "message": message}

    def progress(self, mid: str) -> dict[str, Any] | None:
        with self._guard:
            p = self._progress.get(mid)
            return dict(p) if p is not None else None

    def clear_progress(self, mid: str) -> None:
        with self._guard:
            self._progress.pop(mid, None)

    # --- removal -------------------------------------------------------------------------
    def _forget(self, mid: str) -> None:
        with self._guard:
            self._locks.pop(mid, None)
            self._progress.pop(mid, None)

    def _remove(self, d: Path) -> None:
        """Rename the folder out of sight (atomic: readers see all of it or nothing),
        then delete it."""
        trash = self.root / f"{TRASH_PREFIX}{d.name}-{secrets.token_hex(4)}"
        try:
            os.rename(d, trash)
        except OSError:
            trash = d
        shutil.rmtree(trash, ignore_errors=True)

    def _try_remove(self, mid: str) -> bool:
        """Remove a mix unless its lock is held; whether it was removed."""
        lock = self.lock(mid)
        if not lock.acquire(blocking=False):
            return False
        try:
            d = self.root / mid
            if d.is_dir() and not d.is_symlink():
                self._remove(d)
        finally:
            lock.release()
        self._forget(mid)
        return True

    def delete(self, mid: str) -> None:
        """Remove a mix and its files (waits for a job running on it to finish)."""
        with self.locked(mid) as d:
            self._remove(d)
        self._forget(mid)

    def delete_soon(self, mid: str) -> None:
        """Remove a mix and its files now, or, while a job holds it, as soon as the job
        lets it go, without waiting here (404 if it is unknown): a request thread that
        waited for a render held one of the server's threads, and some forty of them
        held all, every plain route waiting with them. One remover per mix waits."""
        d = self.path(mid)
        lk = self.lock(mid)
        if lk.acquire(blocking=False):
            try:
                if not d.is_dir():
                    raise not_found(mid)
                self._remove(d)
            finally:
                lk.release()
            self._forget(mid)
            return
        if not d.is_dir():
            raise not_found(mid)
        with self._guard:
            if mid in self._removing:
                return
            self._removing.add(mid)

        def remove() -> None:
            try:
                with contextlib.suppress(ApiError):
                    self.delete(mid)
            finally:
                with self._guard:
                    self._removing.discard(mid)

        threading.Thread(target=remove, name=f"vocalmix-delete-{mid}", daemon=True).start()

    def discard(self, mid: str) -> None:
        """Remove a mix that failed while being made (no 404 if it is already gone)."""
        with self.lock(mid):
            d = self.root / mid
            if d.is_dir() and not d.is_symlink():
                self._remove(d)
        self._forget(mid)

    def sweep(self, now: float | None = None) -> list[str]:
        """Remove mixes unchanged for longer than the time to live; returns their ids.

        ``now``: the clock to compare with (Unix time, s); tests pass a future time. A mix
        with work pending (pinned) or whose lock is held is left for the next sweep.
        """
        now = time.time() if now is None else float(now)
        removed = []
        for d in sorted(self.root.iterdir()):
            if d.name.startswith(TRASH_PREFIX) and d.is_dir() and not d.is_symlink():
                shutil.rmtree(d, ignore_errors=True)  # left over by an interrupted removal
                continue
            if not ID_RE.fullmatch(d.name) or d.is_symlink() or not d.is_dir():
                continue
            try:
                mtime = d.stat().st_mtime
            except OSError:
                continue
            if self._expired(d.name, mtime, now) and self._try_remove(d.name):
                removed.append(d.name)
        return removed

    # --- after a restart -------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Turn the jobs a stopped server left behind into states a client can act on;
        returns the ids of the mixes marked failed.

        Runs only while no other server holds the root (else their jobs are running, not
        interrupted): every mix still ``mixing`` and not pinned here becomes ``failed``
        with code ``job.interrupted``; a re-render cut short leaves the mix at its last
        complete revision; revision folders newer than the current one (half written)
        and older than the one before it are removed, and so are leftover uploads.
        """
        if not self._exclusive():
            return []
        failed = []
        try:
            for d in sorted(self.root.iterdir()):
                if not ID_RE.fullmatch(d.name) or d.is_symlink() or not d.is_dir():
                    continue
                if self.pinned(d.name):
                    continue
                with self.lock(d.name):
                    if self._recover_one(d):
                        failed.append(d.name)
        finally:
            self._shared()
        return failed

    def _recover_one(self, d: Path) -> bool:
        try:
            meta = self.meta(d)
        except ApiError:
            return False
        marked = False
        if meta.get("status") == "mixing":
            self.write_meta(d, status="failed", stage="failed", job=None, error={
                "status": 500, "code": "job.interrupted",
                "detail": "interrupted: the server stopped before this mix was done; "
                          "upload the files again"})
            marked = True
        elif meta.get("job"):
            notes = list(meta.get("notes") or [])[:63]
            self.write_meta(d, job=None, notes=notes + [
                "an edit was interrupted by a server restart: the mix is as it was before"])
        rev = int(meta.get("revision") or 0)
        for p in d.iterdir():
            m = REV_RE.fullmatch(p.name)
            if (m and not rev - 1 <= int(m.group(1)) <= rev) or p.name.startswith("upload_"):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        p.unlink()
        return marked

    def _exclusive(self) -> bool:
        if fcntl is None or self._lock_fd is None:
            return True
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def _shared(self) -> None:
        if fcntl is not None and self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH)


def _lstat(p: Path) -> os.stat_result | None:
    """``os.lstat(p)``, ``None`` when it cannot be read (missing, or no access)."""
    try:
        return os.lstat(p)
    except OSError:
        return None


def own_file(p: Path) -> bool:
    """Whether ``p`` is a regular file (not a symlink) owned by this user."""
    return _own_regular(_lstat(p))


def _own_regular(st: os.stat_result | None) -> bool:
    """Whether ``st`` (of :func:`_lstat`) is a regular file (not a symlink) owned by this
    user."""
    uid = _uid()
    return (st is not None and stat.S_ISREG(st.st_mode)
            and (uid is None or st.st_uid == uid))


__all__ = ["BACKING_UPLOAD", "ID_RE", "Store", "default_root", "own_file", "private_root"]
