"""Alignment metrics that Theorem 1 implies for SAL (random V, Vbar): Wbar_transport_angle (Eq. 27 of the
proof) and delta_H_angle (Eq. 9), each checked against a circuit built to satisfy them in closed form."""

import numpy as np
import pytest

from salspike.circuit import Circuit, init_weights
from salspike.metrics import bp_deltas, layer_metrics


@pytest.fixture(scope="module")
def wide():
    """A SAL circuit with a 2x wider downstream, random V and Vbar, and probe activities."""
    c = Circuit.from_dict({"hidden": [6, 5], "input_width": 4, "output_width": 3, "downstream_ratio": 2.0,
                           "seed": 2})
    w = init_weights(c)
    rng = np.random.default_rng(1)
    h = [rng.standard_normal((7, 4))]
    for k in range(c.n_layers):
        a = h[k] @ w[f"W{k}"].T
        h.append(np.maximum(a, 0.0) if k < c.n_layers - 1 else a)
    acts = {f"h{k}": v for k, v in enumerate(h)}
    acts.update({f"hbar{k}": rng.standard_normal((7, c.downstream_widths[k])) for k in range(1, c.n_layers + 1)})
    return c, w, acts, rng


def _transported(w, k, extra=None):
    """Wbar^k with Wbar^k (Vbar^k)^T = V^k (W^k)^T + extra (Vbar^k has full column rank: dbar >= d)."""
    target = w[f"V{k}"] @ w[f"W{k}"].T + (0 if extra is None else extra)
    vb = w.get(f"Vbar{k}")
    return target if vb is None else target @ np.linalg.pinv(vb.T)


def test_wbar_transport_angle_closed_form(wide):
    """Catches: a Wbar alignment measured against W^T alone (Wbar_WT_angle, ~90 degrees here although the
    circuit satisfies Eq. 27 exactly), Vbar or V left out of either side, or the angle not reported for SAL.
    Built: Wbar = V W^T (Vbar^T)^+ gives 0; adding to Wbar Vbar^T a part orthogonal to V W^T of the same norm
    gives exactly 45 degrees."""
    c, w, acts, rng = wide
    for k in (1, 2):
        built = dict(w, **{f"Wbar{k}": _transported(w, k)})
        m = layer_metrics(built, acts, "relu")[k]
        assert m["Wbar_transport_angle"] == pytest.approx(0.0, abs=1e-5)
        t = w[f"V{k}"] @ w[f"W{k}"].T
        e = rng.standard_normal(t.shape)
        e -= (e.ravel() @ t.ravel()) / (t.ravel() @ t.ravel()) * t
        e *= np.linalg.norm(t) / np.linalg.norm(e)
        tilted = dict(w, **{f"Wbar{k}": _transported(w, k, e)})
        assert layer_metrics(tilted, acts, "relu")[k]["Wbar_transport_angle"] == pytest.approx(45.0, abs=1e-6)
    baseline = Circuit.from_dict({"hidden": [6, 5], "input_width": 4, "output_width": 3, "algorithm": "fa"})
    wb = init_weights(baseline)
    mb = layer_metrics(wb, {**{f"h{k}": acts[f"h{k}"] for k in range(4)},
                            **{f"hbar{k}": acts[f"hbar{k}"][:, :baseline.downstream_widths[k]] for k in (1, 2, 3)}},
                       "relu")
    for k in (1, 2):  # V = Vbar = I: the same as the weight-transport angle
        assert mb[k]["Wbar_transport_angle"] == pytest.approx(mb[k]["Wbar_WT_angle"], abs=1e-9)


def test_delta_H_angle_closed_form(wide):
    """Catches: delta_H_angle not using H = Vbar Vbar^T (or using H^T / Vbar^T Vbar), or computed from another
    signal than Vbar hbar.  Built: hbar^{k+1} = Vbar^T delta^{k+1} makes Vbar hbar = H delta exactly (Theorem 1,
    Eq. 9, per sample), so delta_H_angle is 0 while delta_angle is not."""
    c, w, acts, _ = wide
    delta = bp_deltas(w, acts, "relu")
    built = dict(acts)
    for k in (0, 1):
        built[f"hbar{k + 1}"] = delta[k + 1] @ w[f"Vbar{k}"]
    m = layer_metrics(w, built, "relu")
    for k in (0, 1):
        assert m[k]["delta_H_angle"] == pytest.approx(0.0, abs=1e-5)
        assert m[k]["delta_angle"] > 5.0
    assert m[2]["delta_H_angle"] == pytest.approx(m[2]["delta_angle"])  # H = I at the output
