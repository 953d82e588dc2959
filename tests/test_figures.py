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
    if "weight_matrices" in script:  # the "erank" of the titles is spelled out with its reference
        assert "effective rank (Roy &amp; Vetterli 2007)" in out.with_suffix(".svg").read_text()


def _metrics(folder, angles, acc=0.5):
    import json

    folder.mkdir(parents=True)
    recs = [{"epoch": e, "test_accuracy": acc + 0.1 * e, "layers": [{"delta_angle": a} for a in angles] + [
        {"delta_angle": 0.0}]} for e in (1, 2, 3)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return folder


def test_training_curves_bands_and_legend(tmp_path):
    """Runs sharing a label are one mean +- sd curve; BP's angles (0 by construction, on the x axis)
    are said so in the legend; line styles name the layers for every setting, not only the first."""
    from salspike.figures import training_curves

    runs = [_metrics(tmp_path / "bp", [0.0, 0.0]), _metrics(tmp_path / "s0", [40.0, 50.0], 0.4),
            _metrics(tmp_path / "s1", [44.0, 56.0], 0.45)]
    paths = training_curves(runs, ["BP", "SAL", "SAL"], tmp_path / "curves")
    svg = next(p for p in paths if p.suffix == ".svg").read_text()
    assert "SAL (mean +- sd, 2 runs)" in svg and "BP: 0 in every layer (on the x axis)" in svg
    assert "layer W0" in svg and "layer W1" in svg


def test_salspike_figures_on_a_training_run(run_dir):
    """`salspike figures DIR` on a training results folder writes its training curves."""
    from salspike.cli import main

    assert main(["figures", str(run_dir)]) == 0
    for ext in ("pdf", "svg", "png"):
        assert (run_dir / f"training_curves.{ext}").is_file()


def test_compare_figure_names_coincident_curves():
    """V and Vbar's per-trial curves coincide (Lemma 1): the later one is named as drawn under."""
    from salspike.compare import _coincident

    assert _coincident({"W": [1.0, 0.9], "V": [0.5, 0.7], "Vbar": [0.5, 0.7 + 1e-13]}) == {"Vbar": "V"}


def test_gallery_regenerates_from_recorded_results(repo_root, tmp_path, monkeypatch):
    """`salspike figures docs/figures` (a folder of protocol results folders) redraws every
    gallery figure from the committed tables (PNG only here, to keep the suite short; the three
    formats are checked by test_apical_lesion_dose_response)."""
    import shutil

    from salspike.cli import main
    from salspike.protocols import engine

    monkeypatch.setattr(engine, "FORMATS", ("png",))
    gallery = tmp_path / "figures"
    shutil.copytree(repo_root / "docs" / "figures", gallery)
    # protocol results folders (summary.json); docs/figures/reproduction holds the reproduction
    # study's PNGs, drawn by benchmarks/reproduction/figures.py from sweeps that are not committed
    folders = [p for p in gallery.iterdir() if (p / "summary.json").is_file()]
    for folder in folders:
        for png in folder.glob("*.png"):
            png.unlink()
    assert main(["figures", str(gallery)]) == 0
    import json

    names = {p: json.loads((p / "summary.json").read_text())["protocol"] for p in folders}
    assert len(names) >= 7 and all((p / f"{n}.png").is_file() for p, n in names.items())


def test_salspike_figures_on_a_sweep(tmp_path):
    """`salspike figures SWEEP` draws one mean +- sd curve per grid point of sweep.nc (failed seeds,
    NaN, left out)."""
    import numpy as np
    import xarray as xr

    from salspike.cli import main

    acc = np.array([[[0.5, 0.6, 0.7], [0.52, 0.64, 0.72]], [[0.4, 0.5, 0.6], [np.nan] * 3]])
    ang = np.full((2, 2, 3), 40.0)
    ds = xr.Dataset({"test_accuracy": (("eta_scale", "seed", "epoch"), acc),
                     **{f"delta_angle_layer{k}": (("eta_scale", "seed", "epoch"), ang * (k < 2)) for k in range(3)}},
                    coords={"eta_scale": [0.5, 1.0], "seed": [0, 1], "epoch": [1, 2, 3]})
    ds.to_netcdf(tmp_path / "sweep.nc", engine="h5netcdf")
    assert main(["figures", str(tmp_path)]) == 0
    svg = (tmp_path / "training_curves.svg").read_text()
    assert "eta_scale=0.5 (mean +- sd, 2 runs)" in svg and "eta_scale=1.0" in svg and "layer W1" in svg
