"""NWB export (salspike.nwb): a small synthetic run written and read back with pynwb.

Catches: spikes lost or assigned to another neuron/population, series or weights transposed or
truncated, trial timing altered; a non-atomic write leaving a half file."""

from __future__ import annotations

import numpy as np
import pytest

from salspike.errors import ConfigError
from salspike.nwb import read_nwb, write_nwb


def synthetic_run(seed=0):
    rng = np.random.default_rng(seed)
    T = 0.5  # s
    spikes = {pop: [np.sort(rng.uniform(0, T, rng.poisson(rate * T))) for _ in range(n)]
              for pop, n, rate in (("h1", 4, 20.0), ("hbar1", 3, 50.0))}
    spikes["h1"][2] = np.array([])  # a silent neuron stays a unit with no spikes
    t = np.arange(0, T, 0.01)
    series = {"h1.rate": (t, rng.random((t.size, 4)) * 30, "Hz"),
              "h1.I_apical": (t, rng.standard_normal((t.size, 4)) * 1e-10, "A", "apical current")}
    weights = {"W0": (np.array([0.0, 0.25, 0.5]), rng.standard_normal((3, 4, 5))),
               "Vbar0": (np.array([0.0, 0.5]), rng.standard_normal((2, 4, 3)))}
    trials = [{"start_s": 0.0, "stop_s": 0.25, "condition": "paired"},
              {"start_s": 0.25, "stop_s": 0.5, "condition": "unpaired"}]
    stimuli = {"x": (np.array([0.0, 0.25]), rng.standard_normal((2, 5)), "dimensionless")}
    return dict(spikes=spikes, series=series, weights=weights, trials=trials, stimuli=stimuli)


def test_nwb_round_trip(tmp_path):
    run = synthetic_run()
    path = write_nwb(tmp_path / "run.nwb", description="synthetic", **run)
    back = read_nwb(path)
    assert back["description"] == "synthetic"
    assert set(back["spikes"]) == {"h1", "hbar1"}
    for pop, trains in run["spikes"].items():
        assert [len(t) for t in back["spikes"][pop]] == [len(t) for t in trains]  # spike counts per neuron
        for a, b in zip(back["spikes"][pop], trains):
            np.testing.assert_array_equal(a, b)
    for name, (t, data, unit, *_) in run["series"].items():
        bt, bd, bu = back["series"][name]
        np.testing.assert_array_equal(bt, t)
        np.testing.assert_array_equal(bd, data)
        assert bu == unit
    for name, (t, data) in run["weights"].items():
        np.testing.assert_array_equal(back["weights"][name][1], data)
        np.testing.assert_array_equal(back["weights"][name][0], t)
    assert back["trials"] == run["trials"]
    np.testing.assert_array_equal(back["stimuli"]["x"][1], run["stimuli"]["x"][1])
    assert [p.name for p in tmp_path.iterdir()] == ["run.nwb"]  # no temporary file left


def test_nwb_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="expected \\(snapshots, n_post, n_pre\\)"):
        write_nwb(tmp_path / "a.nwb", weights={"W0": ([0.0], np.zeros((4, 5)))})
    with pytest.raises(ConfigError, match="does not exist"):
        read_nwb(tmp_path / "missing.nwb")
    assert not (tmp_path / "a.nwb").exists()
