"""The figure scripts run on a results folder and write PDF, SVG and PNG."""

import runpy
import sys

import pytest

from salspike.circuit import Circuit
from salspike.datasets import load_dataset
from salspike.training import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig") / "run"
    c = Circuit.from_dict({"hidden": [12, 10], "training": {"epochs": 2, "batch_size": 64}, "loss": "cross_entropy"})
    train(c, load_dataset("digits", n_train=200), out, log=lambda *a: None)
    return out


@pytest.mark.parametrize("script, extra", [("figures/training_curves.py", []),
                                           ("figures/weight_matrices.py", ["--layer", "1"])])
def test_figure_scripts_write_all_formats(run_dir, tmp_path, monkeypatch, repo_root, script, extra):
    out = tmp_path / "fig"
    path = str(repo_root / script)  # from the repository root: runs from any working directory
    monkeypatch.setattr(sys, "argv", [path, str(run_dir), *extra, "--out", str(out)])
    runpy.run_path(path, run_name="__main__")
    for ext in ("pdf", "svg", "png"):
        assert out.with_suffix(f".{ext}").stat().st_size > 1000
