"""The results store: crash-safe files, provenance and run folders.

Every write goes to a temporary file in the target's folder, is fsync'ed and
then moved over the target with :func:`os.replace`, so a reader (or a resumed
run) sees either the old file or the new one, never half of one.

JSON convention: numpy scalars and arrays become plain numbers and lists,
tuples become lists, paths become strings, and non-finite floats (NaN, +inf,
-inf) are written as ``null`` so that every file is strict JSON.
"""

from __future__ import annotations

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

from salspike.errors import ConfigError

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


def _atomic_write(path, write) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, fsync, then replace ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


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
    with np.load(os.fspath(path), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------- provenance


def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", _HERE, *args], capture_output=True, text=True, timeout=10)
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


class RunDir:
    """An output folder of one run.

    Files: ``<name>.json`` (:meth:`write_json`), ``<name>.npz``
    (:meth:`save_arrays`), ``metrics.jsonl`` (one JSON record a line,
    :meth:`append_metrics`), ``checkpoint.npz`` (state arrays plus the meta
    dict as JSON under the reserved key ``__meta__``, replaced atomically as
    one file) and ``summary.json``, whose presence marks the run finished
    (:meth:`finish`).

    ``RunDir(path)`` refuses a folder holding a finished run, or an unfinished
    one with metrics or a checkpoint, unless ``resume=True`` (ConfigError).
    """

    SUMMARY = "summary.json"
    METRICS = "metrics.jsonl"
    CHECKPOINT = "checkpoint.npz"
    _META_KEY = "__meta__"

    def __init__(self, path, resume: bool = False):
        self.path = os.path.abspath(os.fspath(path))
        self.resume = resume
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ConfigError(f"output path {self.path!r} exists and is not a folder: pick another --out")
        if not resume:
            if self.is_finished():
                raise ConfigError(f"output folder {self.path!r} already holds a finished run "
                                  f"({self.SUMMARY}): pass --resume to reuse it or pick another folder")
            if os.path.exists(self.file(self.CHECKPOINT)) or self.read_metrics():
                raise ConfigError(f"output folder {self.path!r} holds an unfinished run (metrics or "
                                  "checkpoint): pass --resume to continue it or pick another folder")
        os.makedirs(self.path, exist_ok=True)

    def __repr__(self) -> str:
        return f"RunDir({self.path!r}, resume={self.resume})"

    def __fspath__(self) -> str:
        return self.path

    def file(self, name: str) -> str:
        """Absolute path of ``name`` inside the run folder."""
        return os.path.join(self.path, name)

    @staticmethod
    def _with_ext(name: str, ext: str) -> str:
        return name if name.endswith(ext) else name + ext

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
        """All complete records of ``metrics.jsonl`` ([] if none)."""
        try:
            with open(self.file(self.METRICS), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        if not data.endswith(b"\n"):
            lines = lines[:-1]  # partial last line from a crash
        return [json.loads(ln) for ln in lines if ln.strip()]

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

    def latest_checkpoint(self) -> tuple[dict[str, np.ndarray], dict] | None:
        """``(state, meta)`` of the last checkpoint, or None if there is none."""
        p = self.file(self.CHECKPOINT)
        if not os.path.exists(p):
            return None
        arrays = load_npz(p)
        meta = json.loads(str(arrays.pop(self._META_KEY, np.array("{}"))))
        return arrays, meta

    # -- completion
    def finish(self, summary: dict) -> str:
        """Write ``summary.json`` (with provenance under ``"provenance"`` if absent): the run is done."""
        summary = dict(summary)
        summary.setdefault("provenance", provenance())
        return self.write_json(self.SUMMARY, summary)

    def is_finished(self) -> bool:
        return os.path.isfile(self.file(self.SUMMARY))
