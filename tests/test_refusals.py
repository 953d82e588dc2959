"""Settings that a baseline would silently ignore or override are refused with a one-line ConfigError
naming the problem and its fix."""

import numpy as np
import pytest

from salspike.circuit import Circuit, algorithm_plan, init_weights
from salspike.errors import ConfigError
from salspike.matrix.engine import MatrixNetwork
from salspike.sweeps import point_overrides

TINY = {"hidden": [6, 5], "input_width": 4, "output_width": 3}


def _one_line(err: pytest.ExceptionInfo, *needles):
    msg = str(err.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg


@pytest.mark.parametrize("algo", ["kp", "wm"])
def test_kp_and_wm_refuse_an_explicit_wbar_rate_they_would_replace(paper_model_path, algo):
    """Catches: KP/WM silently training Wbar at eta.W when the model sets another eta.Wbar (paper_mlp's SAL
    rate 0.002), a refusal that does not name the fix, a refusal of an UNSET eta.Wbar (the schema default) or
    of one equal to eta.W, and a written model file (to_dict) that does not read back as the same circuit."""
    sal = Circuit.load(paper_model_path)
    with pytest.raises(ConfigError) as err:
        sal.with_overrides({"algorithm": algo})
    _one_line(err, "eta.Wbar", "--set eta.Wbar=0.02")
    same = sal.with_overrides({"algorithm": algo, "eta.Wbar": 0.02})
    assert algorithm_plan(same).eta["Wbar"] == 0.02
    unset = Circuit.from_dict({**TINY, "algorithm": algo, "eta": {"W": 0.05}})
    assert algorithm_plan(unset).eta["Wbar"] == 0.05
    assert Circuit.from_dict(unset.to_dict()).to_dict() == unset.to_dict()
    # SAL keeps its own Wbar rate
    assert algorithm_plan(sal).eta["Wbar"] == 0.002


def test_eta_scale_does_not_set_an_unset_wbar_rate_for_kp():
    """Catches: a sweep's eta_scale turning kp's unset eta.Wbar (the unused schema default) into an explicit
    value that the refusal above then rejects."""
    base = Circuit.from_dict({**TINY, "eta": {"W": 0.05}})
    over = point_overrides(base, {"algorithm": "kp", "eta_scale": 2})
    assert "eta.Wbar" not in over and over["eta.W"] == 0.1
    Circuit.from_dict({**TINY, "eta": {"W": 0.05}}).with_overrides(over)
    assert point_overrides(base, {"eta_scale": 2})["eta.Wbar"] == pytest.approx(2e-4)  # SAL: scaled


@pytest.mark.parametrize("algo", ["bp", "fa", "kp", "wm"])
def test_baselines_refuse_loaded_weights_whose_V_or_Vbar_is_not_the_identity(algo):
    """Catches: a baseline (V = Vbar = I fixed) loading a random V or Vbar, which would silently change W's
    update Vbar hbar (e.g. SAL weights loaded with algorithm = fa); identity V and Vbar must still load."""
    sal = Circuit.from_dict(TINY)
    base = Circuit.from_dict({**TINY, "algorithm": algo})
    w = init_weights(sal)
    with pytest.raises(ConfigError) as err:
        MatrixNetwork(base, w)
    _one_line(err, "V", "identity", 'algorithm = "sal"')
    ok = init_weights(base)
    for name in ("V1", "Vbar0"):
        bad = dict(ok)
        bad[name] = ok[name] + 1e-3
        with pytest.raises(ConfigError, match=name):
            MatrixNetwork(base, bad)
    MatrixNetwork(base, ok)
    np.testing.assert_array_equal(MatrixNetwork(base, ok).weights["V1"], np.eye(6))
