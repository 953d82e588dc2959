"""Where the CUDA toolchain is: nvcc, cuRAND and the GPU (for brian2cuda builds).

* `find_nvcc` follows a /usr/local/bin wrapper to the real toolkit (explicit path, $CUDA_PATH /
  $CUDA_HOME, PATH, then `DEFAULT_CUDA_DIRS`);
* `find_curand` takes cuRAND from the toolkit or, where the toolkit lacks it, from the PyPI wheel
  ``nvidia-curand`` (the linker's ``libcurand.so`` link is made in ``~/.cache/salspike``, never in
  site-packages);
* `has_gpu` asks ``nvidia-smi -L``.

Nothing here imports Brian2 or brian2cuda.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from salspike.errors import DeviceError

#: Folders searched for a CUDA toolkit after the explicit/env/PATH candidates.
DEFAULT_CUDA_DIRS = ("/usr/local/cuda", "/opt/cuda")


@dataclass(frozen=True)
class CurandLocation:
    """Where cuRAND comes from for a cuda_standalone build."""

    source: str  # "toolkit" or "wheel"
    include_dir: Path
    library: Path  # the real libcurand.so.N
    link_dir: Path  # folder holding a `libcurand.so` for the linker
    runtime_dir: Path  # folder for the binary's rpath


def has_gpu(timeout: float = 20.0) -> bool:
    """True when ``nvidia-smi -L`` lists at least one NVIDIA GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True,
                             timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    if out.returncode != 0:
        return False
    return any(line.startswith("GPU ") for line in out.stdout.splitlines())


def _nvcc_in(root: str | os.PathLike) -> Path | None:
    exe = "nvcc.exe" if os.name == "nt" else "nvcc"
    candidate = Path(root).expanduser() / "bin" / exe
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def _is_toolkit(root: Path) -> bool:
    return (root / "include" / "cuda_runtime.h").is_file() or (root / "nvvm").is_dir()


def _real_nvcc(nvcc: Path) -> Path:
    """The toolkit's own nvcc behind ``nvcc`` (a symlink or a wrapper script such
    as ``/usr/local/bin/nvcc`` that execs ``/usr/local/cuda-13.0/bin/nvcc``):
    brian2cuda derives the toolkit folder from ``cuda_path/bin/nvcc``."""
    real = nvcc.resolve()
    if _is_toolkit(real.parent.parent):
        return real
    try:  # nvcc reports its own folder as _HERE_ in a dry run
        out = subprocess.run([str(nvcc), "-dryrun", "-x", "cu", "-c", os.devnull,
                              "-o", os.devnull], capture_output=True, text=True,
                             timeout=60, check=False)
        for line in (out.stdout + out.stderr).splitlines():
            if line.startswith("#$ _HERE_="):
                here = Path(line.split("=", 1)[1].strip())
                if _nvcc_in(here.parent) and _is_toolkit(here.parent):
                    return _nvcc_in(here.parent)
    except (OSError, subprocess.SubprocessError):
        pass
    return real


def find_nvcc(cuda_path: str | os.PathLike | None = None) -> Path:
    """Return the path of ``nvcc`` (its toolkit folder is ``path.parent.parent``).

    Looks, in this order, at: ``cuda_path`` (when given it must hold
    ``bin/nvcc``; nothing else is tried), the environment variables
    ``CUDA_PATH`` and ``CUDA_HOME``, ``nvcc`` on ``PATH``, and
    `DEFAULT_CUDA_DIRS`. Raises `DeviceError` naming what to install or pass.
    """
    if cuda_path is not None:
        found = _nvcc_in(cuda_path)
        if found is None:
            raise DeviceError(
                f"nvcc not found: cuda_path={str(cuda_path)!r} has no bin/nvcc. Pass the "
                "CUDA toolkit folder that holds bin/nvcc (e.g. /usr/local/cuda) as "
                "cuda_options={'cuda_path': ...}, or install the NVIDIA CUDA toolkit.")
        return found
    tried = []
    for var in ("CUDA_PATH", "CUDA_HOME"):
        value = os.environ.get(var)
        if value:
            found = _nvcc_in(value)
            if found is not None:
                return found
            tried.append(f"${var}={value}")
    on_path = shutil.which("nvcc")
    if on_path is not None:
        return _real_nvcc(Path(on_path))
    tried.append("nvcc on PATH")
    for root in DEFAULT_CUDA_DIRS:
        found = _nvcc_in(root)
        if found is not None:
            return found
        tried.append(root)
    raise DeviceError(
        "nvcc (the CUDA compiler) not found; looked at " + ", ".join(tried) + ". "
        "Install the NVIDIA CUDA toolkit (it provides bin/nvcc), then set CUDA_PATH or "
        "pass cuda_options={'cuda_path': '/path/to/cuda'}.")


def _cuda_major(nvcc: Path) -> int | None:
    try:
        out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True,
                             timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if "release" in line:
            try:
                return int(line.split("release", 1)[1].strip().split(".")[0])
            except (ValueError, IndexError):
                return None
    return None


def _cache_dir() -> Path:
    root = os.environ.get("SALSPIKE_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "salspike"


def _wheel_curand_candidates() -> list[tuple[Path, Path]]:
    """(include_dir, libcurand.so.N) pairs from installed nvidia cuRAND wheels."""
    from importlib import metadata

    pairs: list[tuple[Path, Path]] = []
    for dist_name in ("nvidia-curand", "nvidia-curand-cu13", "nvidia-curand-cu12",
                      "nvidia-curand-cu11"):
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
        headers, libs = [], []
        for f in dist.files or ():
            name = f.name
            if name == "curand.h":
                headers.append(Path(dist.locate_file(f)).resolve())
            elif name.startswith("libcurand.so."):
                libs.append(Path(dist.locate_file(f)).resolve())
        for h in headers:
            for lib in libs:
                if h.is_file() and lib.is_file() and h.parent.parent == lib.parent.parent:
                    pairs.append((h.parent, lib))
    # fall back to a scan of the `nvidia` namespace package (wheels without RECORD)
    try:
        nvidia = importlib.import_module("nvidia")
        roots = [Path(p) for p in getattr(nvidia, "__path__", [])]
    except ImportError:
        roots = []
    for root in roots:
        for header in sorted(root.glob("*/include/curand.h")):
            for lib in sorted(header.parent.parent.glob("lib/libcurand.so.*")):
                pair = (header.parent.resolve(), lib.resolve())
                if pair not in pairs:
                    pairs.append(pair)
    return pairs


def _toolkit_curand(toolkit: Path) -> tuple[Path, Path] | None:
    include_dirs = [toolkit / "include", *sorted(toolkit.glob("targets/*/include"))]
    lib_dirs = [toolkit / "lib64", toolkit / "lib", *sorted(toolkit.glob("targets/*/lib"))]
    for inc in include_dirs:
        if (inc / "curand.h").is_file():
            for lib_dir in lib_dirs:
                if (lib_dir / "libcurand.so").exists():
                    return inc, lib_dir / "libcurand.so"
    return None


def _linker_link(library: Path) -> Path:
    """Folder with a ``libcurand.so`` symlink to ``library`` (salspike's cache).

    The wheel ships only ``libcurand.so.10``; ``-lcurand`` needs ``libcurand.so``.
    The link lives in a salspike cache folder (one per library path), never in
    site-packages.
    """
    digest = hashlib.sha1(str(library).encode()).hexdigest()[:12]
    candidates = [_cache_dir() / "curand" / digest / "lib"]
    import tempfile
    candidates.append(Path(tempfile.gettempdir()) / f"salspike-{os.getuid() if hasattr(os, 'getuid') else 0}"
                      / "curand" / digest / "lib")
    last_error: OSError | None = None
    for folder in candidates:
        link = folder / "libcurand.so"
        try:
            if link.is_symlink() and Path(os.readlink(link)) == library:
                return folder
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".libcurand.so.{os.getpid()}"
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(library)
            os.replace(tmp, link)  # atomic: concurrent builds see old or new link
            return folder
        except OSError as err:
            last_error = err
    raise DeviceError(f"cannot create the libcurand.so link for {library} in "
                      f"{candidates[0]} ({last_error}); set SALSPIKE_CACHE_DIR to a "
                      "writable folder.")


def find_curand(cuda_path: str | os.PathLike | None = None) -> CurandLocation:
    """Locate cuRAND headers and library for a cuda_standalone build.

    Prefers the toolkit's own cuRAND (nvcc finds it without extra flags); else
    the PyPI wheel ``nvidia-curand`` (CUDA 13: ``site-packages/nvidia/cu13/
    include/curand.h`` and ``nvidia/cu13/lib/libcurand.so.10``; CUDA 12 wheels
    ``nvidia-curand-cu12`` use ``nvidia/curand/``), choosing the wheel whose
    folder matches nvcc's major version when several are installed.
    """
    nvcc = find_nvcc(cuda_path)
    toolkit = nvcc.parent.parent
    in_toolkit = _toolkit_curand(toolkit)
    if in_toolkit is not None:
        inc, lib = in_toolkit
        return CurandLocation("toolkit", inc, lib.resolve(), lib.parent, lib.resolve().parent)
    pairs = _wheel_curand_candidates()
    if not pairs:
        raise DeviceError(
            f"cuRAND not found: the CUDA toolkit at {toolkit} has no curand.h/libcurand.so "
            "and no nvidia cuRAND wheel is installed. Install it with "
            "`pip install salspike[cuda]` (PyPI package nvidia-curand for CUDA 13, "
            "nvidia-curand-cu12 for CUDA 12) or install the toolkit's cuRAND.")
    major = _cuda_major(nvcc)
    if major is not None:
        pairs.sort(key=lambda p: 0 if f"cu{major}" in p[0].parts else 1)
    inc, lib = pairs[0]
    return CurandLocation("wheel", inc, lib, _linker_link(lib), lib.parent)


# --------------------------------------------------------------------------- prefs
