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
    """`salspike figures docs/figures` (a folder of results folders) redraws every gallery figure
    from the committed results: the protocol tables with their sketch, the spike raster from its
    NWB file, the level comparison's three figures, the pairing window.  Every gallery PNG is
    shown in docs/figures.md and is under 150 kB.  (PNG only here, to keep the suite short; the
    three formats are checked by the tests of each figure.  docs/figures/reproduction holds
    the reproduction study's PNGs, shown in docs/reproduction.md.)"""
    import json
    import re
    import shutil

    import salspike.levelfigures as levelfigures
    import salspike.plotting as plotting
    import salspike.rasters as rasters
    from salspike.cli import main
    from salspike.figures import _kind
    from salspike.protocols import engine, pairing

    for module in (engine, pairing, plotting, rasters, levelfigures):
        monkeypatch.setattr(module, "FORMATS", ("png",))
    gallery = tmp_path / "figures"
    shutil.copytree(repo_root / "docs" / "figures", gallery)
    # results folders (docs/figures/reproduction: drawn by benchmarks/reproduction/figures.py from sweeps
    # that are not committed)
    folders = [p for p in gallery.iterdir() if _kind(p)]
    removed = [png for folder in folders for png in folder.glob("*.png")]
    for png in removed:
        png.unlink()
    assert main(["figures", str(gallery)]) == 0
    assert removed and all(png.is_file() for png in removed)
    kinds = {_kind(p) for p in folders}
    assert kinds == {"protocol", "compare", "pairing"}
    protocols = {p: json.loads((p / "summary.json").read_text())["protocol"] for p in folders if _kind(p) == "protocol"}
    assert len(protocols) >= 7 and all((p / f"{n}.png").is_file() for p, n in protocols.items())
    assert any((p / f"{n}_raster.png").is_file() for p, n in protocols.items())
    shown = set(re.findall(r"\(figures/([^)]+\.png)\)", (repo_root / "docs" / "figures.md").read_text()))
    committed = {str(png.relative_to(gallery)) for png in removed}
    assert shown == committed, (shown ^ committed)
    for name in committed:
        assert (repo_root / "docs" / "figures" / name).stat().st_size < 150_000, name
        assert (gallery / name).stat().st_size < 150_000, name


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


# ---------------------------------------------------------------- new figures (issue 10, item 3)


def fonts_embedded(pdf) -> bool:
    """pdf.fonttype 42: TrueType fonts embedded (FontFile2), no Type 3 glyph procedures."""
    data = pdf.read_bytes()
    return b"/FontFile2" in data and b"/Type3" not in data and b"/Subtype /Type3" not in data


def capture_figures(monkeypatch, module):
    """Keep the figures ``module`` saves (its ``save_figure``), to read back what they draw."""
    import salspike.plotting as plotting

    kept = []

    def keep(fig, stem, formats=plotting.FORMATS, dpi=150):
        kept.append(fig)
        return plotting.save_figure(fig, stem, formats, dpi)

    monkeypatch.setattr(module, "save_figure", keep)
    return kept


def test_protocol_sketch_draws_the_hooks_that_ran(tmp_path, monkeypatch):
    """The protocol sketch is drawn from the hook calls the run made (not a declaration beside
    them): heterosynaptic clamps h0 and hbar1, cuts the apical input of one h1 neuron, freezes every
    group but W0, and reads W0.  Catches: the session's levels not logged (an empty sketch), a
    hook logged under another target or neuron count, unfreeze ignored (W0 drawn frozen); the
    figure is written in PDF, SVG and PNG with TrueType fonts."""
    import salspike.protocols.engine as engine
    from salspike.protocols import run_protocol

    kept = capture_figures(monkeypatch, engine)
    run_protocol("heterosynaptic", "matrix", tmp_path / "h", seeds=[0])
    table = __import__("json").loads((tmp_path / "h" / "heterosynaptic.json").read_text())
    hooks = {(h["hook"], h["target"]): h for h in table["sketch"]["hooks"]}
    assert hooks[("clamp", "h0")]["conditions"] == hooks[("clamp", "hbar1")]["conditions"] == 1  # one level a seed
    assert hooks[("silence_apical", "h1")]["neurons"] == [1]  # apical_silenced = [0]: one neuron
    assert {("freeze", g) for g in ("W", "Wbar", "V", "Vbar")} <= set(hooks) and ("unfreeze", "W0") in hooks
    assert {("drive", "input"), ("drive", "target")} <= set(hooks) and table["sketch"]["reads"] == ["W0", "h1"]
    sketch_ax = kept[0].subfigs[0].axes[0]
    dotted = [p for p in sketch_ax.patches if getattr(p, "get_linestyle", lambda: "")() in (":", "dotted")]
    solid_w = [p for p in sketch_ax.patches if p.get_linestyle() == "-" and p.get_edgecolor()[:3] ==
               __import__("matplotlib.colors", fromlist=["to_rgb"]).to_rgb("#0072B2")]
    assert len(solid_w) == 1 and len(dotted) == 2 + 2 + 2 + 3  # W0 plastic; W1-2, Wbar1-2, V1-2, Vbar0-2 frozen
    svg = (tmp_path / "h" / "heterosynaptic.svg").read_text()
    assert "apical cut" in svg and ">1 neuron<" in svg and "clamped" in svg and "read by the table" in svg
    for ext in ("pdf", "svg", "png"):
        assert (tmp_path / "h" / f"heterosynaptic.{ext}").stat().st_size > 1000
    assert fonts_embedded(tmp_path / "h" / "heterosynaptic.pdf")


def test_spike_raster_script_on_the_gallery_nwb(repo_root, tmp_path, monkeypatch):
    """figures/spike_raster.py on the gallery's committed NWB file (a spike-level area_silencing run):
    PDF/SVG/PNG with TrueType fonts and a PSTH table whose counts, per population, polarity and
    trial, are the file's spikes recounted with pynwb; each condition shown.  A missing file is one
    line and exit 2."""
    pytest.importorskip("pynwb")
    from test_demo import raster_counts_agree_with_nwb

    nwb = repo_root / "docs" / "figures" / "area_silencing_raster" / "area_silencing.nwb"
    out = tmp_path / "raster"
    path = str(repo_root / "figures" / "spike_raster.py")
    monkeypatch.setattr(sys, "argv", [path, str(nwb), "--max-trials", "6", "--out", str(out)])
    runpy.run_path(path, run_name="__main__")
    raster_counts_agree_with_nwb(nwb, out)
    monkeypatch.setattr(sys, "argv", [path, str(tmp_path / "none.nwb"), "--out", str(out)])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(path, run_name="__main__")
    assert exc.value.code == 2
