"""benchmarks/reproduction/figures.py on tiny synthetic sweep folders (sweep.nc in the format salspike.sweeps
writes, and points/ with model.toml and weights.npz): the summary numbers and every figure kind."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def figs():
    spec = importlib.util.spec_from_file_location("repro_figures", ROOT / "benchmarks" / "reproduction" / "figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_sweep(folder: Path, grid: dict, variables: dict, n_seeds=3, n_epochs=4, status=None, model="tiny"):
    """variables: name -> array of shape (grid..., seed, epoch). status: (grid..., seed) strings (default done)."""
    import xarray as xr

    dims = list(grid) + ["seed"]
    coords = {**{k: np.asarray(v) for k, v in grid.items()}, "seed": np.arange(n_seeds), "epoch": np.arange(1, n_epochs + 1)}
    shape = tuple(len(v) for v in grid.values()) + (n_seeds,)
    st = np.full(shape, "done", dtype="<U8") if status is None else np.asarray(status, dtype="<U8")
    data = {k: (dims + ["epoch"], np.asarray(v, dtype=float)) for k, v in variables.items()}
    data["status"] = (dims, st)
    ds = xr.Dataset(data, coords=coords, attrs={
        "sweep": json.dumps({"model": f"../../models/{model}.toml", "dataset": "digits"}),
        "provenance_git_commit": "0123456789abcdef"})
    folder.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(folder / "sweep.nc", engine="h5netcdf")
    return ds


def test_finals_take_the_last_epoch_of_finished_seeds_and_sample_sd(figs, tmp_path):
    """Catches: the first instead of the final epoch, diverged seeds counted, population (ddof 0) sd."""
    acc = np.zeros((2, 3, 4))
    acc[..., -1] = [[0.90, 0.92, 0.97], [0.50, 0.60, 0.70]]
    acc[..., 0] = 0.1
    ds = write_sweep(tmp_path / "s", {"eta_scale": [1, 2]}, {"test_accuracy": acc},
                     status=[["done", "done", "diverged"], ["done"] * 3])
    v = figs.finals(ds, "test_accuracy")
    mean, sd, n = figs.mean_sd(v)
    np.testing.assert_allclose(mean, [0.91, 0.60])
    np.testing.assert_allclose(sd, [np.std([0.90, 0.92], ddof=1), 0.1])
    np.testing.assert_array_equal(n, [2, 3])
    m1, s1, n1 = figs.mean_sd(np.array([[0.5, np.nan]]))
    assert m1[0] == 0.5 and s1[0] == 0.0 and n1[0] == 1


def test_every_figure_kind_renders(figs, tmp_path):
    from salspike.circuit import Circuit, init_weights

    rng = np.random.default_rng(0)
    out = tmp_path / "fig"
    for name in ("sal", "bp"):
        write_sweep(tmp_path / "t1" / name, {"eta_scale": [2]}, {"test_accuracy": rng.uniform(0.8, 1, (1, 3, 4))})
    assert figs.main(["table1", str(tmp_path / "t1" / "sal"), str(tmp_path / "t1" / "bp"),
                      "--out", str(out / "table1"), "--formats", "pdf,png"]) == 0
    pdf = (out / "table1.pdf").read_bytes()
    assert b"FontFile2" in pdf  # TrueType embedded (pdf.fonttype 42), not Type 3
    write_sweep(tmp_path / "f2", {"downstream_ratio": [1.0, 2.0, 4.0], "init.rescale_with_downstream": [False, True]},
                {"test_accuracy": rng.uniform(0.8, 1, (3, 2, 2, 4))}, n_seeds=2)
    write_sweep(tmp_path / "f4", {"plastic": ['["W"]', '["W", "V", "Vbar"]']},
                {"test_accuracy": rng.uniform(0.8, 1, (2, 2, 4))}, n_seeds=2)
    write_sweep(tmp_path / "f5", {"eta.V": [0.0, 0.004], "eta.Vbar": [0.0004, 0.004, 0.04]},
                {"test_accuracy": rng.uniform(0.8, 1, (2, 3, 2, 4))}, n_seeds=2,
                status=[[["done", "done"], ["done", "done"], ["diverged", "diverged"]], [["done", "done"]] * 3])
    layered = {f"{b}_layer{k}": rng.uniform(0, 1, (2, 4)) for b in ("lemma1_normalised", "erank_H") for k in (1, 2)}
    write_sweep(tmp_path / "tr", {}, {**layered, "val_accuracy": rng.uniform(0.5, 1, (2, 4))}, n_seeds=2)
    for kind, folder in (("fig2", "f2"), ("fig4", "f4"), ("fig5", "f5"), ("trajectory", "tr")):
        assert figs.main([kind, str(tmp_path / folder), "--out", str(out / kind), "--formats", "png"]) == 0
    # fig3: a point whose final weights differ from its initial ones
    model = tmp_path / "f3" / "points" / "eta_scale=2,seed=0-abc"
    model.mkdir(parents=True)
    (model / "model.toml").write_text('name = "tiny"\nhidden = [6, 6]\ninput_width = 5\noutput_width = 3\n')
    c = Circuit.load(model / "model.toml")
    np.savez(model / "weights.npz", **init_weights(c.with_overrides({"seed": 7})))
    assert figs.main(["fig3", str(tmp_path / "f3"), "--point", "eta_scale=2", "--out", str(out / "fig3"),
                      "--formats", "png"]) == 0
    for kind in ("table1", "fig2", "fig3", "fig4", "fig5", "trajectory"):
        assert (out / f"{kind}.png").stat().st_size > 1000


def test_missing_sweep_is_a_clear_exit(figs, tmp_path):
    with pytest.raises(SystemExit, match="sweep.nc not found"):
        figs.main(["fig4", str(tmp_path), "--out", str(tmp_path / "x")])
