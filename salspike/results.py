"""The results store: crash-safe files, provenance and run folders.

Every write goes to a temporary file in the target's folder, is fsync'ed and
then moved over the target with :func:`os.replace`, so a reader (or a resumed
run) sees either the old file or the new one, never half of one.

JSON convention: numpy scalars and arrays become plain numbers and lists,
tuples become lists, paths become strings, and non-finite floats (NaN, +inf,
-inf) are written as ``null`` so that every file is strict JSON.

Files get the permissions of the user's umask (``0o666 & ~umask``), like any file the user
makes, not the 0600 of a private temp file.  A :class:`RunDir` holds an OS lock on its
folder while open, so two runs never write the same folder.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
from datetime import datetime, timezone

import numpy as np

from salspike.circuit.schema import flatten_tables
from salspike.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: run folders are not locked
    fcntl = None

_HERE = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------- atomic files


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask.

    Read from ``/proc/self/status`` (Linux >= 4.7) without changing it; elsewhere by setting and
    restoring it, which is racy across threads (a file another thread creates in that instant
    gets mode 0o077-masked, i.e. more private; accepted).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o077)
    os.umask(old)
    return old


def atomic_write_path(path, produce) -> None:
    """Atomically create ``path`` with ``produce(tmp_path)``: a temp file in the target's folder,
    fsync'ed, given mode ``0o666 & ~umask`` (mkstemp's 0600 would hide it from collaborators) and
    moved over ``path`` with :func:`os.replace`; removed if ``produce`` raises.  Readers see the
    old file or the new one, never half of one.  Writers that need a file name (netCDF) call this."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        produce(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def _atomic_write(path, write) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, then replace ``path`` (see
    `atomic_write_path`)."""
    def produce(tmp):
        with open(tmp, "wb") as f:
            write(f)

    atomic_write_path(path, produce)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, os.replace)."""
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode(encoding))


def to_jsonable(obj):
    """``obj`` with numpy types, tuples and paths made JSON-native; NaN/inf become None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, complex):
        return [to_jsonable(obj.real), to_jsonable(obj.imag)]
    return obj


def dumps_json(obj, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` after :func:`to_jsonable`."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, sort_keys=False)


def atomic_write_json(path, obj, indent: int | None = 2) -> None:
    """Write ``obj`` as strict JSON atomically (numpy converted, NaN/inf as null)."""
    atomic_write_text(path, dumps_json(obj, indent) + "\n")


def atomic_save_npz(path, **arrays) -> None:
    """``np.savez`` to ``path`` atomically (``path`` is used as given, no ``.npz`` added)."""
    _atomic_write(path, lambda f: np.savez(f, **arrays))


def load_npz(path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, read into memory (no pickles)."""
    with open(os.fspath(path), "rb") as f, np.load(f, allow_pickle=False) as z:  # f: closed on errors too
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------- provenance


def _git(*args: str) -> str | None:
    try:
        # --no-optional-locks: `git status` must not take the index lock, or a run killed during
        # provenance would leave a stale .git/index.lock in the user's checkout
        r = subprocess.run(["git", "--no-optional-locks", "-C", _HERE, *args], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def _version(module: str) -> str | None:
    """Version of ``module`` without importing it where package metadata has it; None if absent."""
    mod = sys.modules.get(module)
    if getattr(mod, "__version__", None):
        return str(mod.__version__)
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(module)
    except PackageNotFoundError:
        pass
    try:
        return str(getattr(__import__(module), "__version__", "unknown"))
    except Exception:
        return None


def provenance(extra: dict | None = None) -> dict:
    """Where and with what a result was made.

    Keys: ``git_commit`` (HEAD of the checkout holding the salspike package, or
    "unknown" if it is not a git checkout), ``git_dirty`` (True if files under
    the package folder differ from HEAD, untracked ones included; None when
    unknown), ``python``, ``numpy``, ``scipy``, ``brian2`` (None if not
    importable), ``salspike``, ``hostname``, ``platform``, ``argv`` and
    ``timestamp_utc`` (ISO 8601). ``extra`` is merged in last.
    """
    commit = _git("rev-parse", "HEAD")
    tracked = _git("ls-files", "--", ".") if commit else None
    if commit and tracked:  # the package's own files are in this repository
        status = _git("status", "--porcelain", "--", ".")
        dirty = None if status is None else bool(status)
    else:
        commit, dirty = "unknown", None
    info = {
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "brian2": _version("brian2"),
        "salspike": _version("salspike") or "unknown",
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "argv": list(sys.argv),
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        info.update(extra)
    return info


# ----------------------------------------------------------------- run folder


_ABSENT = object()


def config_differences(saved: dict, requested: dict, ignore=()) -> list[str]:
    """``"key old -> new"`` for every dotted key whose value differs between two configs.

    ``requested`` is compared as it would be saved (JSON round trip); a missing value shows as
    ``(absent)``.  Keys equal to or under an entry of ``ignore`` are skipped, and so are
    top-level sections the saved config lacks (written by an older salspike).
    """
    old = flatten_tables(saved)
    new = flatten_tables(json.loads(dumps_json(requested, None)))
    skip = tuple(ignore)

    def show(flat, key):
        return json.dumps(flat[key]) if key in flat else "(absent)"

    diffs = []
    for key in [*old, *(k for k in new if k not in old)]:
        if key in skip or key.startswith(tuple(p + "." for p in skip)) or key.split(".")[0] not in saved:
            continue
        if old.get(key, _ABSENT) != new.get(key, _ABSENT):
            diffs.append(f"{key} {show(old, key)} -> {show(new, key)}")
    return diffs


class RunDir:
    """An output folder of one run, locked while open.

    Files: ``<name>.json`` (:meth:`write_json`), ``<name>.npz``
    (:meth:`save_arrays`), ``metrics.jsonl`` (one JSON record a line,
    :meth:`append_metrics`), ``checkpoint.npz`` (state arrays plus the meta
    dict as JSON under the reserved key ``__meta__``, replaced atomically as
    one file) and ``summary.json``, whose presence marks the run finished
    (:meth:`finish`).

    ``RunDir(path)`` creates the folder if needed and takes an exclusive OS lock
    (``flock`` on ``.lock``, which holds the PID, host and start time of the
    holder); the OS drops it when the process dies, even by SIGKILL.  It is
    refused (ConfigError) for an empty or unwritable path, a path that is not a
    folder, a folder locked by another RunDir, and, unless ``resume=True``, a
    folder holding a finished run or an unfinished one with metrics or a
    checkpoint.  Release with :meth:`close` or use it as a context manager;
    closing also removes folders it created that stayed empty.
    """

    SUMMARY = "summary.json"
    METRICS = "metrics.jsonl"
    CHECKPOINT = "checkpoint.npz"
    CONFIG = "config.json"
    LOCK = ".lock"
    _META_KEY = "__meta__"

    def __init__(self, path, resume: bool = False):
        self._lock_fd = None
        self._created: list[str] = []
        if path is None or not os.fspath(path):
            raise ConfigError("no output folder given (--out is empty): pass --out FOLDER")
        self.path = os.path.abspath(os.fspath(path))
        self.resume = resume
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ConfigError(f"output path {self.path!r} exists and is not a folder: pick another --out")
        self._make_folder()
        try:
            self._lock()
            if not resume:
                if self.is_finished():
                    raise ConfigError(f"output folder {self.path!r} already holds a finished run "
                                      f"({self.SUMMARY}): pass --resume to reuse it or pick another folder")
                if os.path.exists(self.file(self.CHECKPOINT)) or self._has_metrics():
                    raise ConfigError(f"output folder {self.path!r} holds an unfinished run (metrics or "
                                      "checkpoint): pass --resume to continue it or pick another folder")
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"RunDir({self.path!r}, resume={self.resume})"

    def __fspath__(self) -> str:
        return self.path

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self._unlock()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    def file(self, name: str) -> str:
        """Absolute path of ``name`` inside the run folder."""
        return os.path.join(self.path, name)

    @staticmethod
    def _with_ext(name: str, ext: str) -> str:
        return name if name.endswith(ext) else name + ext

    # -- folder and lock
    def _make_folder(self) -> None:
        """Create the folder and missing parents, remembering them for :meth:`close`."""
        missing, p = [], self.path
        while not os.path.isdir(p) and os.path.dirname(p) != p:
            missing.append(p)
            p = os.path.dirname(p)
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:
                if os.path.isdir(d):  # made meanwhile by someone else: not ours to remove
                    continue
                self.close()
                raise ConfigError(f"cannot create output folder {self.path!r}: {d!r} exists and is not a "
                                  "folder: pick another --out") from None
            except OSError as exc:
                self.close()
                raise ConfigError(f"cannot create output folder {self.path!r} ({exc.strerror}): "
                                  "pick another --out") from None
            self._created.append(d)

    def _lock(self) -> None:
        """Take the folder's lock (non-blocking) and write our PID, host and time into it."""
        if fcntl is None:  # pragma: no cover
            return
        lock = self.file(self.LOCK)
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise ConfigError(f"cannot write in output folder {self.path!r} ({exc.strerror}): "
                                  "pick another --out") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.pread(fd, 4096, 0) if exc.errno in (errno.EAGAIN, errno.EACCES) else None
                os.close(fd)
                if holder is None:  # the file system cannot lock (e.g. some network mounts)
                    raise ConfigError(f"cannot lock output folder {self.path!r} ({exc.strerror}): "
                                      "pick another --out on a local disk") from None
                raise ConfigError(f"output folder {self.path!r} is in use by {self._describe(holder)}: "
                                  "wait for that run to end (or stop it), or pick another --out") from None
            try:  # a closing holder may have unlinked the file we opened: lock the current one
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "since": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        os.ftruncate(fd, 0)
        os.pwrite(fd, (info + "\n").encode(), 0)
        self._lock_fd, self._lock_pid = fd, os.getpid()

    @staticmethod
    def _describe(holder: bytes) -> str:
        try:
            h = json.loads(holder)
            pid, host, since = int(h["pid"]), str(h["host"]), str(h["since"])
        except (ValueError, KeyError, TypeError):
            return "another process (it has not written its PID yet)"
        mine = " (this process)" if pid == os.getpid() and host == socket.gethostname() else ""
        return f"PID {pid}{mine} on host {host} since {since}"

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        if self._lock_pid == os.getpid():  # not in a forked child sharing the lock
            try:
                os.unlink(self.file(self.LOCK))  # while still locked: see the check in _lock
            except OSError:
                pass
        os.close(fd)

    def close(self) -> None:
        """Release the lock and remove the folders this RunDir created if they are still empty."""
        self._unlock()
        for d in reversed(self._created):
            try:
                os.rmdir(d)
            except OSError:
                break
        self._created = []

    # -- plain files
    def write_json(self, name: str, obj) -> str:
        """Write ``obj`` to ``<name>.json`` atomically; returns the path."""
        p = self.file(self._with_ext(name, ".json"))
        atomic_write_json(p, obj)
        return p

    def read_json(self, name: str):
        with open(self.file(self._with_ext(name, ".json")), encoding="utf-8") as f:
            return json.load(f)

    def save_arrays(self, name: str, **arrays) -> str:
        """Save arrays to ``<name>.npz`` atomically; returns the path."""
        p = self.file(self._with_ext(name, ".npz"))
        atomic_save_npz(p, **arrays)
        return p

    def load_arrays(self, name: str) -> dict[str, np.ndarray]:
        return load_npz(self.file(self._with_ext(name, ".npz")))

    # -- metrics
    def append_metrics(self, record: dict) -> None:
        """Append one JSON line to ``metrics.jsonl`` and fsync.

        A crash can at worst leave a partial last line (no newline); it is cut
        off here before appending and skipped by :meth:`read_metrics`.
        """
        p = self.file(self.METRICS)
        line = (dumps_json(record, indent=None) + "\n").encode("utf-8")
        with open(p, "ab+") as f:
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # partial line left by a crash: cut it off
                    f.seek(0)
                    f.truncate(f.read().rfind(b"\n") + 1)
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict]:
        """All complete records of ``metrics.jsonl`` ([] if none); ConfigError if one is not JSON."""
        try:
            with open(self.file(self.METRICS), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        if not data.endswith(b"\n"):
            lines = lines[:-1]  # partial last line from a crash
        records = []
        for i, ln in enumerate(lines, 1):
            if not ln.strip():
                continue
            try:
                rec = json.loads(ln)
            except ValueError:
                rec = None
            if not isinstance(rec, dict):
                raise ConfigError(f"{self.METRICS} in {self.path} is corrupt (line {i} is not a JSON record): "
                                  f"delete it and {self.CHECKPOINT} to rerun from epoch 1 with --resume, "
                                  "or start a new --out")
            records.append(rec)
        return records

    def _has_metrics(self) -> bool:
        try:
            return bool(self.read_metrics())
        except ConfigError:
            return True

    def trim_metrics(self, n: int) -> None:
        """Keep only the first ``n`` records (atomic rewrite), e.g. those up to a resumed checkpoint."""
        recs = self.read_metrics()[:n]
        atomic_write_text(self.file(self.METRICS), "".join(dumps_json(r, None) + "\n" for r in recs))

    # -- checkpoints
    def checkpoint(self, state: dict[str, np.ndarray], meta: dict | None = None) -> str:
        """Save ``state`` arrays and the ``meta`` dict together as one atomic file."""
        if self._META_KEY in state:
            raise ValueError(f"state key {self._META_KEY!r} is reserved")
        p = self.file(self.CHECKPOINT)
        atomic_save_npz(p, **{k: np.asarray(v) for k, v in state.items()},
                        **{self._META_KEY: np.array(dumps_json(meta or {}, None))})
        return p

    def unreadable_checkpoint(self) -> ConfigError:
        """The error for a checkpoint that cannot be used (also raised by callers checking its meta)."""
        return ConfigError(f"{self.CHECKPOINT} in {self.path} is unreadable (truncated?): delete it to rerun "
                           "from epoch 1 with --resume, or start a new --out")

    def latest_checkpoint(self) -> tuple[dict[str, np.ndarray], dict] | None:
        """``(state, meta)`` of the last checkpoint, None if there is none; ConfigError if unreadable."""
        p = self.file(self.CHECKPOINT)
        if not os.path.exists(p):
            return None
        try:
            arrays = load_npz(p)
            meta = json.loads(str(arrays.pop(self._META_KEY, np.array("{}"))))
        except Exception:  # noqa: BLE001 - zip, npy and JSON errors all mean a damaged file
            raise self.unreadable_checkpoint() from None
        if not isinstance(meta, dict):
            raise self.unreadable_checkpoint()
        return arrays, meta

    # -- resume
    def check_resume(self, config: dict, *, epochs_done: int = 0, force: bool = False, ignore=()) -> list[str]:
        """Compare ``config`` with the saved ``config.json`` before resuming; touches no file.

        Differences (see :func:`config_differences`) raise a ConfigError listing them unless
        ``force``.  ``epochs`` may change, but not to fewer than ``epochs_done``.  Returns the
        differences found ([] without a saved config).
        """
        path = self.file(self.CONFIG)
        if not os.path.exists(path):
            return []
        try:
            saved = self.read_json(self.CONFIG)
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            if force:
                return [f"{self.CONFIG} unreadable"]
            raise ConfigError(f"{self.CONFIG} in {self.path} is unreadable ({exc}): cannot check the settings "
                              "of this run; pass --force to resume anyway, or start a new --out") from None
        diffs = config_differences(saved, config, ignore=(*ignore, "epochs"))
        new_epochs = config.get("epochs")
        if new_epochs is not None and new_epochs < epochs_done:
            diffs.append(f"epochs {saved.get('epochs', '?')} -> {new_epochs} "
                         f"(fewer than the {epochs_done} already done)")
        if diffs and not force:
            raise ConfigError(f"--resume of {self.path} refused: the settings differ from its {self.CONFIG}: "
                              f"{'; '.join(diffs)}: resume with the saved settings, pass --force to resume "
                              "anyway, or start a new --out")
        return diffs

    # -- completion
    def finish(self, summary: dict) -> str:
        """Write ``summary.json`` (with provenance under ``"provenance"`` if absent): the run is done."""
        summary = dict(summary)
        summary.setdefault("provenance", provenance())
        return self.write_json(self.SUMMARY, summary)

    def is_finished(self) -> bool:
        return os.path.isfile(self.file(self.SUMMARY))
