"""The hook API (salspike.circuit.Hooks): the same manipulations mean the same at every level.

The matrix level applies hooks in numpy (salspike.matrix.engine); the rate level turns them into
Brian2 run-time values (effective weights, per-synapse plasticity flags, stim/clamp terms of the
equation file).  These tests check each hook against its definition at the matrix level and the
two levels against each other, update by update.
"""

from __future__ import annotations

import numpy as np
import pytest

from salspike.circuit import Circuit, Hooks, circuit_layout, init_weights
from salspike.errors import ConfigError, ShapeError
from salspike.levels import make_level

FAST_RATE = {"tau_up": 1.0, "tau_down": 1.0, "dt": 0.5, "t_forward": 20.0, "t_feedback": 20.0,
             "t_plasticity": 5.0}


def small(**over) -> Circuit:
    data = {"hidden": [4, 3], "input_width": 3, "output_width": 2, "downstream_widths": [6, 5],
            "downstream_nonlinearity": "relu_jacobian", "seed": 2, "gamma": 0.0,
            "eta": {"W": 0.11, "Wbar": 0.07, "V": 0.05, "Vbar": 0.13},
            "init": {"W": 1.0, "Wbar": 1.0, "V": 1.0, "Vbar": 1.0}, "rate": FAST_RATE}
    data.update(over)
    return Circuit.from_dict(data)


def trials(c, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c.widths[0])), rng.standard_normal((n, c.widths[-1]))


def manipulate(level):
    level.stimulate("h0", [0.2, -0.1, 0.3])
    level.clamp("hbar2", 0.0, neurons=[1])
    level.lesion("V1", fraction=0.5, seed=4)
    level.silence_apical("h1", neurons=[0, 2])
    level.freeze("Wbar")


def test_matrix_and_rate_levels_apply_the_same_hooks():
    """Rate level (runtime) vs matrix level, online, with stimulate + clamp + partial lesion +
    apical silencing + freeze: every group's update agrees to 1e-6 relative, and the hooks
    change the updates (so the agreement is not that of two unhooked runs).
    Catches: a hook ignored or applied differently at one level (e.g. the rate level passing the
    stored instead of the effective Vbar weights, or silenced synapses still learning)."""
    c = small()
    w0 = init_weights(c)
    x, y = trials(c)
    new = {}
    for name in ("matrix", "rate"):
        with make_level(name, c, w0) as level:
            manipulate(level)
            level.step(x, y, online=True)
            new[name] = level.weights
    with make_level("matrix", c, w0) as plain:
        plain.step(x, y, online=True)
        unhooked = plain.weights
    for k in w0:
        d_mat = new["matrix"][k] - w0[k]
        d_rate = new["rate"][k] - w0[k]
        scale = max(np.linalg.norm(d_mat), 1e-12)
        assert np.linalg.norm(d_rate - d_mat) / scale <= 1e-6, k
    changed = [k for k in w0 if not np.allclose(new["matrix"][k], unhooked[k])]
    assert {"W0", "V1", "Wbar1"} <= set(changed)


def test_silence_apical_stops_W_learning_there_and_keeps_Vbar():
    """With the apical compartments of h1 neurons 0 and 2 silenced (gamma = 0): W0's rows of
    those neurons do not change, other rows do; Vbar0's rows onto them neither transmit nor learn
    and keep their weights; after unsilence_apical they transmit again.
    Catches: apical silencing that zeroes the stored Vbar weights, or that leaves W's
    heterosynaptic factor (the apical input) on."""
    c = small()
    w0 = init_weights(c)
    x, y = trials(c)
    level = make_level("matrix", c, w0)
    level.silence_apical("h1", neurons=[0, 2])
    level.step(x, y, online=True)
    w = level.weights
    assert np.array_equal(w["W0"][[0, 2]], w0["W0"][[0, 2]])
    assert not np.allclose(w["W0"][[1, 3]], w0["W0"][[1, 3]])
    assert np.array_equal(w["Vbar0"][[0, 2]], w0["Vbar0"][[0, 2]])
    assert not np.allclose(w["Vbar0"][[1, 3]], w0["Vbar0"][[1, 3]])
    level.unsilence_apical("h1")
    before = level.weights["W0"].copy()
    level.step(x, y, online=True)
    assert not np.allclose(level.weights["W0"][[0, 2]], before[[0, 2]])


def test_lesion_fraction_and_pairs_stay_cut():
    """A seeded random fraction of V1 and given (post, pre) pairs of W1 are 0 after lesion and stay
    0 through learning; the other synapses learn.  Catches: lesioned synapses that still learn
    (their update not masked) or a fraction that is not the one asked for."""
    c = small()
    level = make_level("matrix", c)
    level.lesion("V1", fraction=0.25, seed=1)
    level.lesion("W1", pairs=[(0, 1), (2, 3)])
    mask = level.hooks.lesions["V1"]
    assert mask.sum() == round(0.25 * mask.size)
    x, y = trials(c, 4)
    level.step(x, y, online=True)
    assert not np.any(level.weights["V1"][mask])
    assert level.weights["W1"][0, 1] == 0 and level.weights["W1"][2, 3] == 0
    assert np.count_nonzero(level.weights["V1"]) == mask.size - mask.sum()


def test_silence_and_stimulate_at_the_matrix_level():
    """silence(h1) makes h1 zero and so h2 = 0 (ReLU of W1 * 0); stimulating h0 by s equals the
    input x + s.  Catches: a clamp applied after the nonlinearity of the next layer, a stimulus
    added at the wrong place."""
    c = small()
    x, y = trials(c)
    level = make_level("matrix", c)
    ref = level.activities(x + 0.5, y)
    level.stimulate("h0", 0.5)
    act = level.activities(x, y)
    for k in ref:
        np.testing.assert_allclose(act[k], ref[k], rtol=1e-12, atol=1e-12)
    level.silence("h1")
    act = level.activities(x, y)
    assert not np.any(act["h1"]) and not np.any(act["h2"])


def test_hook_errors_name_the_problem():
    layout = circuit_layout(small())
    hooks = Hooks(layout)
    with pytest.raises(ConfigError, match="unknown population"):
        hooks.silence("h9")
    with pytest.raises(ConfigError, match="apical"):
        hooks.silence_apical("hbar1")
    with pytest.raises(ConfigError, match="fraction"):
        hooks.lesion("V", fraction=1.5)
    with pytest.raises(ConfigError, match="one synapse group"):
        hooks.lesion("W", pairs=[(0, 0)])
    with pytest.raises(ShapeError, match="pairs"):
        hooks.lesion("W1", pairs=[(9, 0)])
    with pytest.raises(ShapeError, match="NaN"):
        hooks.stimulate("h0", [np.nan, 0, 0])
    level = make_level("matrix", small())
    with pytest.raises(ConfigError, match="matrix level has no time"):
        level.record("h1", "h")


def test_spike_level_applies_apical_silencing_and_partial_lesions():
    """The closed-loop spike level runs the hooks the open-loop one refused.  Catches: an apical
    silencing that does not reach W's tag (W0 onto the silenced neurons must not change), and a
    partial lesion that leaves cut synapses transmitting or learning (they must stay 0)."""
    c = small().with_overrides({"spike.t_settle": 50.0, "spike.t_window": 300.0, "spike.rate_scale": 40.0})
    w0 = init_weights(c)
    level = make_level("spike", c, w0, device="runtime", seed=1)
    level.silence_apical("h1", neurons=[0, 1])
    cut = level.lesion("V1", fraction=0.5, seed=3)
    assert cut == ["V1"]
    x = np.random.default_rng(0).uniform(0.5, 1.0, (2, c.widths[0]))
    y = np.eye(c.widths[-1])[[0, 1]]
    level.step(x, y, online=True)
    new = level.weights
    np.testing.assert_array_equal(new["W0"][:2], w0["W0"][:2])  # gamma = 0: no apical input, no change
    assert np.abs(new["W0"][2:] - w0["W0"][2:]).max() > 0
    mask = level.hooks.lesions["V1"]
    assert mask.sum() == round(0.5 * mask.size) and np.all(new["V1"][mask] == 0)
    assert np.abs(new["V1"][~mask] - w0["V1"][~mask]).max() > 0
    level.close()
