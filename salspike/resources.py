"""Files that ship inside the package: model, equation and protocol files.

Their one source is the top-level ``models/`` and ``protocols/`` folders of the repository,
which the build maps into the package as ``salspike.models`` and ``salspike.protocol_files``
(pyproject.toml, ``[tool.setuptools.package-dir]``), so an installed wheel carries them and an
editable install reads the repository's files.  Everything is found with `importlib.resources`,
never through the repository's path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import ConfigError

_PACKAGES = {"model": "salspike.models", "protocol": "salspike.protocol_files"}


def _folder(kind: str):
    try:
        return resources.files(_PACKAGES[kind])
    except ModuleNotFoundError:  # pragma: no cover - a broken install
        raise ConfigError(f"the bundled {kind} files are missing from this installation of salspike; "
                          "reinstall it (pip install salspike)") from None


def bundled(kind: str) -> list[str]:
    """Names (without .toml) of the bundled files of a kind ('model' or 'protocol')."""
    return sorted(p.name[:-5] for p in _folder(kind).iterdir() if p.name.endswith(".toml"))


def bundled_path(kind: str, name: str) -> Path:
    """The path of a bundled file, e.g. ``bundled_path('model', 'paper_mlp')``."""
    stem = name[:-5] if name.endswith(".toml") else name
    entry = _folder(kind).joinpath(stem + ".toml")
    if not entry.is_file():
        raise ConfigError(f"no bundled {kind} named {name!r}; bundled: {', '.join(bundled(kind))}")
    return Path(str(entry))


def resolve(kind: str, name_or_path: str | Path) -> Path:
    """A user's file path, or else the name of a bundled file ('paper_mlp', 'pairing_window')."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.suffix in ("", ".toml") and len(p.parts) == 1 or str(p).startswith(("models/", "protocols/")):
        try:
            return bundled_path(kind, p.name)
        except ConfigError:
            pass
    names = [n for n in bundled(kind) if not n.endswith("_equations")]
    raise ConfigError(f"{kind} file {p} does not exist; give a path or one of the bundled {kind}s: {', '.join(names)}")
