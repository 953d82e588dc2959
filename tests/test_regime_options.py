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
