"""The two_compartment tier's measured rate model: the output-train statistics `salspike
calibrate` measures (`train_moments`), the table that carries them (`CalibratedTransfer`) and
their use in the matched rate model (`MatrixNetwork`, ``spike.matched_transfer = "calibrated"``).
Fast: no Brian2 run (the calibration itself is tested in test_spike_network.py)."""

from __future__ import annotations

import numpy as np
import pytest

from salspike.brian.calibrate import train_moments
from salspike.circuit import Circuit, init_weights
from salspike.circuit.functions import CalibratedTransfer
from salspike.errors import ConfigError
from salspike.matrix.engine import MatrixNetwork

S, TAU = 20.0, 0.02  # Hz per activity unit, s


def test_train_moments_of_poisson_and_regular_trains_equal_their_closed_forms():
    """Poisson trains of rate r: filtered variance r / (2 s^2 tau_s) (Campbell) and S(0) = r / s^2,
    within 5% (sampling error of 4 x 400 s: about 1.5% and 2.5%); a regular train of period P:
    the exact filtered variance of A e^{-u/tau} / (1 - q), u uniform on [0, P), q = e^{-P/tau},
    to 1%, and S(0) below 5% of Poisson.  Catches: a filter without the 1 / (s tau_s) normalisation (off by
    (s tau)^2), a count window in the wrong units, the trace sampled before a spike's jump (its
    mean, hence the variance, shifts)."""
    rng = np.random.default_rng(0)
    r, T = 15.0, 400.0
    trains = [np.sort(rng.uniform(0, T, rng.poisson(r * T))) for _ in range(4)]
    fv, p0 = train_moments(trains, 0.0, T, S, TAU)
    assert fv == pytest.approx(r / (2 * S * S * TAU), rel=0.05)
    assert p0 == pytest.approx(r / S ** 2, rel=0.05)
    period = 1 / r
    regular = [np.arange(rng.uniform(0, period), T, period) for _ in range(4)]
    fv, p0 = train_moments(regular, 0.0, T, S, TAU)
    q, amp = np.exp(-period / TAU), 1 / (S * TAU)
    m1 = amp * TAU / period
    m2 = (amp / (1 - q)) ** 2 * TAU / (2 * period) * (1 - q * q)
    assert fv == pytest.approx(m2 - m1 ** 2, rel=0.01)
    assert p0 < 0.05 * r / S ** 2  # a count of 7 or 8 per 0.5 s window: 3% of Poisson


def _table(rate_hz, filtered_var=None, power0=None, mu=(-1.0, 0.0, 1.0, 2.0, 3.0), sigma=(0.0, 0.5, 1.0, 1.5, 2.0)):
    rows = []
    for m in mu:
        for s in sigma:
            row = [m, s, rate_hz(m, s)]
            if filtered_var is not None:
                row += [filtered_var(m, s), power0(m, s)]
            rows.append(row)
    return rows


def test_calibrated_table_reads_five_columns_and_still_reads_three():
    """A 5-column table gives its filtered variance and S(0) at the grid points exactly; a
    3-column table (the first calibrate version) has none; other shapes are refused."""
    rate = lambda m, s: 10.0 * max(m, 0) + 2 * s  # noqa: E731
    new = CalibratedTransfer(_table(rate, lambda m, s: 0.1 * m + 1, lambda m, s: 0.01 * s), S)
    assert new.has_moments
    assert new.filtered_variance(1.0, 0.5) == pytest.approx(1.1)
    assert new.power(1.0, 1.5) == pytest.approx(0.015)
    assert new(1.0, 1.0) == pytest.approx(12.0 / S)
    old = CalibratedTransfer(_table(rate), S)
    assert not old.has_moments and old.filtered_variance(1.0, 1.0) is None and old.power(1.0, 1.0) is None
    with pytest.raises(ConfigError, match="salspike calibrate"):
        CalibratedTransfer([[0.0, 0.0, 1.0, 2.0]] * 4, S)


WIDE_MU, WIDE_SIGMA = (-6.0, -3.0, 0.0, 3.0, 6.0), (0.0, 1.0, 2.0, 3.0, 4.0)


def _calibrated(rows):
    c = Circuit.from_dict({"hidden": [6, 5], "input_width": 4, "output_width": 3, "seed": 3,
                           "spike.tier": "two_compartment", "spike.matched_transfer": "calibrated",
                           "spike.calibration": rows})
    return c, MatrixNetwork(c, init_weights(c))


def test_the_next_layers_input_variance_is_the_measured_filtered_variance():
    """Layer 2's input variance is sum_j W_ij^2 filtered_var_j (mean field) with filtered_var the
    table's measured value at layer 1's (mu, sigma), not the Poisson shot noise plus linear
    response: checked with a table whose filtered variance is a known function, through the
    rate of layer 2 read back from a table linear in sigma.  Catches: the measured column not
    used (the linear-response fallback gives another sigma), the Poisson part subtracted twice."""
    # linear in both axes on the whole grid, so that the PCHIP interpolant equals it
    rate = lambda m, s: S * (0.1 * (m + 7.0) + 0.2 * s)  # noqa: E731
    fvar = lambda m, s: 2.0 + 0.2 * m + 0.1 * s  # noqa: E731  (positive on the grid)
    c, net = _calibrated(_table(rate, fvar, lambda m, s: 0.01, mu=WIDE_MU, sigma=WIDE_SIGMA))
    x = np.random.default_rng(0).uniform(0.2, 1.0, (3, 4))
    h = net.activities(x, np.eye(3)[:3]).as_arrays()
    W0, W1 = net.weights["W0"], net.weights["W1"]
    mu1 = x @ W0.T
    sigma1 = np.sqrt(np.abs(x) @ (W0 ** 2).T / (2 * S * TAU))  # layer 1: Poisson inputs
    fv1 = 2.0 + 0.2 * mu1 + 0.1 * sigma1
    sigma2 = np.sqrt(fv1 @ (W1 ** 2).T)
    mu2 = h["h1"] @ W1.T
    assert np.all(np.abs(mu1) < 6) and np.all(np.abs(mu2) < 6) and np.all(sigma2 < 4)  # inside the grid
    np.testing.assert_allclose(h["h2"], 0.1 * (mu2 + 7) + 0.2 * sigma2, rtol=1e-9)


def test_window_power_of_a_calibrated_layer_is_its_measured_power_plus_the_input_excess():
    """S(0) of a calibrated neuron = power0(mu, sigma) + gain^2 (S_I - 2 tau_s sigma^2): the table
    measured the neuron under OU input (S_I = 2 tau_s sigma^2); the network's input has S_I =
    sum_j W_ij^2 S_j.  With a constant power0 = 0.05 and filtered_var = 0.5 and a rate linear in mu
    (gain 0.1): layer 1 (Poisson inputs: S_I = 2 tau_s sigma^2 exactly) has S = 0.05; layer 2 has
    S = 0.05 + 0.1^2 (0.05 - 2 tau_s 0.5) sum_j W_ij^2.  Catches: the input excess left
    out, added without the gain, or with the OU part not subtracted."""
    rate = lambda m, s: S * 0.1 * (m + 7.0)  # noqa: E731  (gain 0.1 on the whole grid)
    c, net = _calibrated(_table(rate, lambda m, s: 0.5, lambda m, s: 0.05, mu=WIDE_MU, sigma=WIDE_SIGMA))
    x = np.random.default_rng(1).uniform(0.2, 1.0, (2, 4))
    p = net.window_power(x)
    h = net.activities(x, np.eye(3)[:2]).as_arrays()
    W1 = net.weights["W1"]
    assert np.all(np.abs(x @ net.weights["W0"].T) < 6) and np.all(np.abs(h["h1"] @ W1.T) < 6)  # inside the grid
    np.testing.assert_allclose(p["h1"], 0.05, rtol=1e-6)
    expected = 0.05 + 0.1 ** 2 * (0.05 - 2 * TAU * 0.5) * (W1 ** 2).sum(1)
    np.testing.assert_allclose(p["h2"], np.broadcast_to(expected, p["h2"].shape), rtol=1e-6)


def test_a_malformed_calibration_is_refused_when_the_model_loads(tmp_path):
    """Ragged rows (one row short of a column) and a table that is not a grid are refused by
    `Circuit` with a one-line error naming spike.calibration and the fix, before any run starts
    (was: a numpy ValueError traceback in the first training step)."""
    rows = _table(lambda m, s: 10.0 * m + 20, lambda m, s: 1.0, lambda m, s: 0.05)
    ragged = [rows[0][:4]] + rows[1:]
    with pytest.raises(ConfigError, match="spike.calibration: expected rows"):
        Circuit.from_dict({"hidden": [4], "spike.calibration": ragged})
    with pytest.raises(ConfigError, match="spike.calibration: the rows do not fill"):
        Circuit.from_dict({"hidden": [4], "spike.calibration": rows[:-1]})
    assert Circuit.from_dict({"hidden": [4], "spike.calibration": rows})["spike.calibration"] == rows
