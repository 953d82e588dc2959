"""Options for finding the self-assembling regime (docs/reproduction.md): decay per group and initial V
scaled with the downstream width, each checked against its closed form."""

import numpy as np
import pytest

from salspike.circuit import Circuit, algorithm_plan, init_weights
from salspike.errors import ConfigError
from salspike.matrix.engine import MatrixNetwork

TINY = {"hidden": [6, 5], "input_width": 4, "output_width": 3, "downstream_ratio": 2.0, "gamma": 0.1,
        "eta": {"W": 0.05, "Wbar": 0.01, "V": 0.01, "Vbar": 0.01}, "seed": 5}


def test_decay_groups_decay_only_the_named_groups():
    """Catches: decay_groups ignored (V and Vbar still decaying, or W and Wbar not), or the decay of the named
    groups changed.  Closed form: with decay_groups = [W, Wbar] one step's update of V and Vbar equals the
    no-decay update eta <post pre^T>, and W's, Wbar's equals it minus gamma w (Eqs. 5-8, absolute decay)."""
    kp_like = Circuit.from_dict({**TINY, "decay_groups": ["W", "Wbar"]})
    assert algorithm_plan(kp_like).decay == {"W": 0.1, "Wbar": 0.1, "V": 0.0, "Vbar": 0.0}
    assert algorithm_plan(Circuit.from_dict(TINY)).decay == {g: 0.1 for g in ("W", "Wbar", "V", "Vbar")}
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 3))
    net = MatrixNetwork(kp_like)
    plain = MatrixNetwork(Circuit.from_dict({**TINY, "gamma": 0.0}))
    act = net.activities(x, y)
    d, d0 = net.updates(act), plain.updates(act)
    for name in d:
        w = net.weights[name]
        expected = d0[name] - (0.1 * w if name.startswith("W") else 0.0)  # W{k} and Wbar{k}
        np.testing.assert_allclose(d[name], expected, rtol=1e-12, atol=1e-15, err_msg=name)
    with pytest.raises(ConfigError, match="decay_groups"):
        Circuit.from_dict({**TINY, "decay_groups": ["U"]})


def test_initial_V_rescaled_with_downstream_width():
    """Catches: init.rescale_with_downstream ignored (|V h| growing like sqrt(dbar/d) with the downstream
    ratio) or applied to other groups.  Closed form: V^k ~ N(0, gain^2 / dbar_k), so E|V h|^2 = gain^2 |h|^2 at
    any ratio; at ratio 1 the weights are those of the default initialisation."""
    base = {"hidden": [100], "input_width": 4, "output_width": 2, "downstream_ratio": 10.0, "seed": 1}
    plain = init_weights(Circuit.from_dict(base))
    scaled = init_weights(Circuit.from_dict({**base, "init": {"rescale_with_downstream": True}}))
    assert np.std(plain["V1"]) == pytest.approx(1 / np.sqrt(100), rel=0.02)
    assert np.std(scaled["V1"]) == pytest.approx(1 / np.sqrt(1000), rel=0.02)
    h = np.random.default_rng(2).standard_normal((50, 100))
    assert np.mean(np.sum((h @ scaled["V1"].T) ** 2, 1) / np.sum(h ** 2, 1)) == pytest.approx(1.0, rel=0.05)
    for name in ("W0", "W1", "Wbar1", "Vbar0"):
        np.testing.assert_array_equal(plain[name], scaled[name])
    one = {**base, "downstream_ratio": 1.0}
    a, b = init_weights(Circuit.from_dict(one)), init_weights(Circuit.from_dict({**one, "init": {"rescale_with_downstream": True}}))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_oja_interstream_rule_closed_form():
    """Catches: interstream_rule = "oja" ignored, applied to W or Wbar, or with the wrong per-row factor.
    Closed form: dV = eta_V (<hbar h^T> - diag(<hbar^2>) V) - gamma V and dVbar likewise with post h^{k+1}
    (Eqs. 6 and 8 plus Oja's term); the fused in-place step gives the same weights as the updates."""
    c = Circuit.from_dict({**TINY, "interstream_rule": "oja"})
    plain = MatrixNetwork(Circuit.from_dict(TINY))
    net = MatrixNetwork(c)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 3))
    act = net.activities(x, y)
    d, d0 = net.updates(act), plain.updates(act)
    for k in (1, 2):
        post = act.hbar[k]
        np.testing.assert_allclose(d[f"V{k}"], d0[f"V{k}"] - 0.01 * np.mean(post ** 2, 0)[:, None] * net.weights[f"V{k}"],
                                   rtol=1e-12, atol=1e-15)
    for k in (0, 1):
        post = act.h[k + 1]
        np.testing.assert_allclose(d[f"Vbar{k}"],
                                   d0[f"Vbar{k}"] - 0.01 * np.mean(post ** 2, 0)[:, None] * net.weights[f"Vbar{k}"],
                                   rtol=1e-12, atol=1e-15)
    for name in ("W0", "W1", "W2", "Wbar1", "Wbar2"):
        np.testing.assert_array_equal(d[name], d0[name])
    expected = {n: net.weights[n] + d[n] for n in d}
    net.step(x, y)
    for n in d:
        np.testing.assert_allclose(net.weights[n], expected[n], rtol=1e-12, atol=1e-14, err_msg=n)


@pytest.mark.parametrize("level", ["rate", "spike"])
def test_brian_levels_refuse_the_matrix_only_oja_rule(level, small_circuit):
    """Catches: a Brian2 level silently running the Hebbian V, Vbar rules for a circuit that asks for Oja's
    form (implemented at the matrix level only); the refusal must name the level, the setting and the fix."""
    from salspike.levels import make_level

    oja = small_circuit.with_overrides({"interstream_rule": "oja"})
    with pytest.raises(ConfigError) as err:
        make_level(level, oja)
    msg = str(err.value)
    assert "\n" not in msg and level in msg and "interstream_rule" in msg and "--level matrix" in msg
    make_level("matrix", oja).close()
