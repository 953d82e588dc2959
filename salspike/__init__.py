"""salspike: the self-assembling learning (SAL) circuit of Liao et al. 2024 at the matrix, rate
and spike levels.  See README.md and docs/architecture.md."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("salspike")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without an install
    __version__ = "0+unknown"
