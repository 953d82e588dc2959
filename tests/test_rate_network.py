"""The Brian2 rate network (salspike.brian.rate) against the matrix level and independent
integrations.

Tolerances (relative Frobenius errors, max over weight matrices):
* one_shot, 1e-6: the only difference from `MatrixNetwork.step` is the residual of the
  settling phases.  With forward Euler at dt/tau = 0.5 a layer's error shrinks by
  (1 - dt/tau) = 0.5 per step; a chain of L relaxing layers after n = 40 steps keeps about
  C(n, L-1) 0.5^(n-L+1) <= 1e-7 (L <= 5), and the weights see it scaled by eta.  Observed:
  1e-13..1e-11.  1e-6 leaves margin and catches any real mistake (a wrong factor, order or
  index gives O(1) errors).
* continuous, 1e-3: the plasticity ODE over the window differs from one step at second order:
  the activities drift by O(eta * signal) while the weights change (and a ReLU or D_d gate may
  flip during the window), and the decay integrates to exp(-c) instead of 1 - c.  Relative
  to the weights that is ~(eta |hbar| |h|)^2 + c^2/2: with the paper-like rates of
  `random_circuit` (eta_W = 0.11) a deep random circuit reaches 5e-2, so the continuous tests
  scale the rates down (eta_W = 2.2e-3, c = 0.01: observed 2e-6..5e-4) and check the second
  order explicitly.
  A weight-level tolerance alone cannot fail when one group stops learning (its update is
  ~1e-3 of its weights), so each weight matrix's UPDATE (new - old) is also compared:
* continuous, per matrix, update vs the matrix step, 5e-2 of the update: the same second-order
  terms relative to the first-order update, O(eta |hbar| |h| + c) (observed 8e-4..2e-2).
* continuous, per matrix, learning term vs the frozen-activity window, 0.1 of the learning term:
  the decay -c w alone is most of the update when c = gamma = 0.01 exceeds eta * signal, so an
  update tolerance can miss a group whose eta is 0 (observed: Wbar with eta 0 is 4e-2 off its
  update).  `window_reference` integrates the plasticity ODE over the window in the rate
  network's Euler steps with the activities frozen at the matrix level's: w_N = q^N w_0 +
  eta H (1 - q^N) / c with q = 1 - c / N; what is left is the activity drift, O(c + eta signal)
  relative to the learning term eta H (observed 8e-4..3.7e-2); a group that does not learn is
  off by 1.

Each scientific test names in its docstring the mistakes in the package it catches ("Catches:");
each was checked by making that mistake in the package and seeing the test fail.
"""

from __future__ import annotations

import copy

import brian2  # a hard dependency: a missing one fails, never skips
import numpy as np
import pytest

from salspike.brian import assembly, devices
from salspike.brian.equations import load_rate_models
from salspike.brian.rate import RateNetwork
from salspike.circuit import Circuit, init_weights
from salspike.errors import ConfigError
from salspike.matrix.engine import MatrixNetwork

ONE_SHOT_TOL = 1e-6
CONTINUOUS_TOL = 1e-3
CONTINUOUS_UPDATE_TOL = 5e-2
CONTINUOUS_LEARNING_TOL = 0.1
FAST_RATE = {"tau_up": 1.0, "tau_down": 1.0, "dt": 0.5, "t_forward": 20.0, "t_feedback": 20.0,
             "t_plasticity": 5.0}


def random_circuit(seed=0, dd="identity", rule="equations", plasticity="one_shot", eta_scale=1.0,
                   gamma=0.03, **over):
    """Random widths (1-3 hidden layers), downstream wider than upstream (dbar > d)."""
    rng = np.random.default_rng(seed)
    hidden = [int(v) for v in rng.integers(2, 6, size=rng.integers(1, 4))]
    dbar = [int(h + rng.integers(1, 4)) for h in hidden]
    data = {"hidden": hidden, "input_width": int(rng.integers(2, 6)), "output_width": int(rng.integers(2, 4)),
            "downstream_widths": dbar, "rule": rule, "downstream_nonlinearity": dd, "seed": seed, "gamma": gamma,
            "eta": {"W": 0.11 * eta_scale, "Wbar": 0.07 * eta_scale, "V": 0.05 * eta_scale,
                    "Vbar": 0.13 * eta_scale},
            "init": {"W": 1.0, "Wbar": 1.0, "V": 1.0, "Vbar": 1.0},
            "rate": dict(FAST_RATE, plasticity=plasticity)}
    for key, value in over.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return Circuit.from_dict(data)


def data_for(c, n, seed=0):
    rng = np.random.default_rng(100 + seed)
    x = rng.standard_normal((n, c.widths[0]))
    if c["loss"] == "cross_entropy":
        y = np.eye(c.widths[-1])[rng.integers(0, c.widths[-1], n)]
    else:
        y = rng.standard_normal((n, c.widths[-1]))
    return x, y


def rel_err(a: dict, b: dict) -> float:
    return max(np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(b[k]), 1e-300) for k in b)


def update_err(new: dict, ref: dict, w0: dict) -> float:
    errs = [np.linalg.norm((new[k] - w0[k]) - (ref[k] - w0[k])) / np.linalg.norm(ref[k] - w0[k])
            for k in ref if np.linalg.norm(ref[k] - w0[k]) > 0]
    return max(errs)


def matrix_reference(c, w0, x, y):
    mat = MatrixNetwork(c, copy.deepcopy(w0))
    act = mat.step(x, y, online=True).as_arrays()
    return mat.weights, act


def window_reference(c, w0, x, y):
    """The continuous plasticity window with the activities frozen at the matrix level's, one
    trial per row: N = t_plasticity / dt forward-Euler steps of w' = (eta H - c w) / t_p give
    w_N = q^N w_0 + eta H (1 - q^N) / c, q = 1 - c / N, where eta H is the Hebbian /
    heterosynaptic term of the matrix update (update + c w) and c the decay coefficient (gamma,
    or eta gamma for Algorithm 1).  Returns the weights and, per matrix, the learning term
    (the change beyond the pure decay q^N w_0 of every trial)."""
    mat = MatrixNetwork(c, copy.deepcopy(w0))
    n_steps = round(c["rate.t_plasticity"] / c["rate.dt"])
    decayed = {k: 1.0 for k in w0}
    for i in range(x.shape[0]):
        for name, upd in mat.updates(mat.activities(x[i:i + 1], y[i:i + 1])).items():
            group = name.rstrip("0123456789")
            eta = mat.plan.eta[group]
            coef = c["gamma"] if c["rule"] == "equations" else eta * c["gamma"]
            hebb = upd + coef * mat.weights[name]
            q = (1.0 - coef / n_steps) ** n_steps
            decayed[name] *= q
            mat.weights[name] = q * mat.weights[name] + (hebb * (1.0 - q) / coef if coef else hebb)
    learned = {k: mat.weights[k] - decayed[k] * w0[k] for k in w0}
    return mat.weights, learned


# ----------------------------------------------------------------- models and layout


def test_equations_file_loads_and_names_rule_kinds():
    """Catches: a rule kind (hebbian / heterosynaptic) changed in models/rate_equations.toml."""
    m = load_rate_models()
    assert {m.synapses[g]["kind"] for g in ("V", "Vbar")} == {"hebbian"}
    assert {m.synapses[g]["kind"] for g in ("W", "Wbar")} == {"heterosynaptic"}
    assert [m.synapses[g]["summed"] for g in ("W", "Vbar", "Wbar", "V")] == ["I_ff", "I_apical", "I_fb", "I_lat"]


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace('kind = "heterosynaptic"\npre = "upstream"', 'kind = "hebbian"\npre = "upstream"', 1),
     "hebbian rule uses the postsynaptic activity"),
    (lambda t: t.replace('post_factor = "I_apical_post"', 'post_factor = "h_post"'), "heterosynaptic"),
    (lambda t: t.replace('post_factor = "I_lat_post"', 'post_factor = "I_fb_post"'), "heterosynaptic"),
    (lambda t: t.replace('kind = "hebbian"\npre = "upstream"', 'kind = "anti"\npre = "upstream"'), "kind"),
    (lambda t: t.replace("(1 - clamp_on) * (I_ff + stim(t, i) - u)", "(1 - clamp_on) * (I_ff - u)"), "stim"),
    (lambda t: t.replace('summed = "I_fb"', 'summed = "I_ff"'), "summed target"),
    (lambda t: t.replace("dh/dt = ((1 - clamp_on)", "dh/dt = ((1 - clamp_on"), "Brian2 equations"),
])
def test_equations_file_validation(tmp_path, edit, match):
    """Catches: a validation rule of `load_rate_models` deleted (each edit must raise; checked
    with the summed-target check)."""
    from salspike.brian.equations import default_equations_path

    text = default_equations_path().read_text()
    bad = edit(text)
    assert bad != text
    path = tmp_path / "eqs.toml"
    path.write_text(bad)
    with pytest.raises(ConfigError, match=match):
        load_rate_models(path)


def test_weight_layout_roundtrip_any_synapse_order():
    """Catches: pre/post (i/j) swapped in `matrix_to_w` / `w_to_matrix`."""
    rng = np.random.default_rng(0)
    M = rng.standard_normal((4, 3))
    i, j = assembly.dense_indices(4, 3)
    assert np.array_equal(assembly.matrix_to_w(M, i, j), M.T.ravel())  # presynaptic-major
    perm = rng.permutation(i.size)
    w = assembly.matrix_to_w(M, i[perm], j[perm])
    assert np.array_equal(assembly.w_to_matrix(w, i[perm], j[perm], M.shape), M)
    assert np.array_equal(w, M[j[perm], i[perm]])  # Brian2: i = pre (column), j = post (row)


def test_schedule_is_explicit_and_synchronous():
    """Catches: the slots of `assembly.SCHEDULE` out of order (plasticity before the summed
    inputs), or two objects tied on (when, order)."""
    c = random_circuit(1)
    net = RateNetwork(c)
    spec = net._spec(2)
    from salspike.brian.rate import _assemble

    devices.select_device("runtime")
    brian2.BrianLogger.suppress_name("unused_brian_object")  # assembled, never run here
    with assembly.using_codegen_target("numpy"):  # no Cython build for code that never runs
        asm = _assemble(spec, {})
        rows = asm.schedule_table()
    keys = [(w, o) for _, w, o in rows]
    assert len(set(keys)) == len(keys), "no two objects may tie on (when, order)"
    kinds = ["summed" if "summed_variable" in n else "syn" if n.startswith("syn_") else
             "neu" if n.startswith("pop_") else "mon" for n, _, _ in rows]
    # monitors read first, then all summed inputs, then plasticity, then the neurons
    assert kinds == sorted(kinds, key=["mon", "summed", "syn", "neu"].index)


def test_bp_and_wm_are_rejected_clearly():
    """Catches: bp silently built (weight transport has no rate model; wm likewise)."""
    for algo in ("bp", "wm"):
        c = random_circuit(0, algorithm=algo, downstream_widths=None, downstream_ratio=1.0,
                           eta={"Wbar": 0.11})  # wm trains Wbar at eta.W: an explicit eta.Wbar must equal it
        with pytest.raises(ConfigError, match=algo):
            RateNetwork(c)


def test_phase_lengths_must_be_multiples_of_dt():
    """Catches: the phase-length check deleted."""
    c = random_circuit(0, rate={"t_forward": 20.25})
    with pytest.raises(ConfigError, match="multiple"):
        RateNetwork(c)


# ----------------------------------------------------------------- rate limit = matrix


@pytest.mark.parametrize("dd", ["identity", "relu_jacobian"])
@pytest.mark.parametrize("rule", ["equations", "algorithm1"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_trial_one_shot_equals_matrix_step(seed, rule, dd):
    """The rate limit: one trial (one_shot) is one matrix step, update by update.

    Catches: eta of W, Wbar, V or Vbar zero (its term deleted) at rate level; the decay
    deleted, or not eta-scaled for Algorithm 1; the sign of the plasticity ODE flipped; the
    relu_jacobian gate reading I_fb instead of I_lat; the Algorithm 1 variants of V (pre-D_d)
    and Vbar (pre-D_u) ignored; the error module's sign flipped; T_p wrong; pre and post
    swapped in the weight layout."""
    c = random_circuit(seed, dd, rule)
    assert all(db > d for d, db in zip(c.widths[1:-1], c.downstream_widths[1:-1]))
    w0 = init_weights(c)
    x, y = data_for(c, 1, seed)
    ref_w, ref_act = matrix_reference(c, w0, x, y)
    net = RateNetwork(c, w0)
    new_w, act = net.run_trials(x, y)
    assert set(new_w) == set(c.shapes())
    assert rel_err(new_w, ref_w) <= ONE_SHOT_TOL
    assert update_err(new_w, ref_w, w0) <= ONE_SHOT_TOL  # the update itself, not only the weights
    for k, v in ref_act.items():
        assert act[k].shape == v.shape
        np.testing.assert_allclose(act[k], v, rtol=0, atol=1e-6 * (1 + np.abs(v).max()))


@pytest.mark.parametrize("seed, dd, rule", [(0, "identity", "equations"), (1, "relu_jacobian", "algorithm1"),
                                            (2, "relu_jacobian", "equations")])
def test_one_trial_continuous_equals_matrix_step(seed, dd, rule, assert_updates_close):
    """Continuous plasticity over the window: the weights (1e-3), each matrix's update against
    the matrix step (5e-2 of the update) and each matrix's learning term against the
    frozen-activity window (0.1 of the learning term); see the module docstring.

    Catches: eta of W, Wbar, V or Vbar zero at rate level (the weight-level check alone passed
    with it in 1 or 2 of the 3 cases); the decay deleted; the sign of the plasticity ODE
    flipped; the relu_jacobian gate or an Algorithm 1 variant wrong; T_p wrong."""
    c = random_circuit(seed, dd, rule, plasticity="continuous", eta_scale=0.02, gamma=0.01)
    w0 = init_weights(c)
    x, y = data_for(c, 1, seed)
    ref_w, _ = matrix_reference(c, w0, x, y)
    new_w, _ = RateNetwork(c, w0).run_trials(x, y)
    assert rel_err(new_w, ref_w) <= CONTINUOUS_TOL
    assert_updates_close(new_w, ref_w, w0, CONTINUOUS_UPDATE_TOL)
    win_w, learned = window_reference(c, w0, x, y)
    assert_updates_close(new_w, win_w, w0, CONTINUOUS_LEARNING_TOL, scale=learned)


def test_continuous_differs_from_one_step_at_second_order():
    """Halving every learning rate (decay eta-scaled, Algorithm 1) quarters the difference.

    Catches: a group's eta zero at rate level (its error becomes first order); T_p wrong; the
    Algorithm 1 decay or variants, or the relu_jacobian gate, wrong."""
    errs = []
    for scale in (0.04, 0.02):
        c = random_circuit(1, "relu_jacobian", "algorithm1", plasticity="continuous", eta_scale=scale)
        w0 = init_weights(c)
        x, y = data_for(c, 1, 1)
        ref_w, _ = matrix_reference(c, w0, x, y)
        errs.append(rel_err(RateNetwork(c, w0).run_trials(x, y)[0], ref_w))
    assert 3.5 < errs[0] / errs[1] < 4.5


@pytest.mark.parametrize("seed, dd, rule", [(3, "identity", "equations"), (4, "relu_jacobian", "algorithm1")])
def test_twenty_online_trials_equal_matrix(seed, dd, rule, assert_updates_close):
    """20 trials in one run, in order, one update each (one_shot, then continuous).

    Catches: the trials run in another order; any group's eta zero at rate level (per-matrix
    update checks, one_shot and continuous); the decay deleted; T_p wrong."""
    c = random_circuit(seed, dd, rule)
    w0 = init_weights(c)
    x, y = data_for(c, 20, seed)
    ref_w, ref_act = matrix_reference(c, w0, x, y)
    net = RateNetwork(c, w0)
    new_w, act = net.run_trials(x, y)
    assert rel_err(new_w, ref_w) <= CONTINUOUS_TOL
    assert rel_err(new_w, ref_w) <= ONE_SHOT_TOL  # one_shot stays at the settling residual
    assert_updates_close(new_w, ref_w, w0, ONE_SHOT_TOL)
    assert act["hbar1"].shape == (20, c.downstream_widths[1])
    for k, v in ref_act.items():  # activities each trial saw before its update
        np.testing.assert_allclose(act[k], v, rtol=0, atol=1e-6 * (1 + np.abs(v).max()), err_msg=k)
    # continuous mode over 20 trials with small rates (second-order terms stay small)
    cc = c.with_overrides({"rate.plasticity": "continuous", "eta.W": 0.0011, "eta.Wbar": 0.0007,
                           "eta.V": 0.0005, "eta.Vbar": 0.0013, "gamma": 0.003})
    ref_w, _ = matrix_reference(cc, w0, x, y)
    new_w, _ = RateNetwork(cc, w0).run_trials(x, y)
    assert rel_err(new_w, ref_w) <= CONTINUOUS_TOL
    assert_updates_close(new_w, ref_w, w0, CONTINUOUS_UPDATE_TOL)
    win_w, learned = window_reference(cc, w0, x, y)
    assert_updates_close(new_w, win_w, w0, CONTINUOUS_LEARNING_TOL, scale=learned)


@pytest.mark.parametrize("algo", ["fa", "kp"])
def test_baselines_fa_kp(algo, assert_updates_close):
    """Catches: FA's Wbar learning, or KP's Wbar not learning (eta zero), at rate level; the
    D_d = ReLU-Jacobian gate of the baselines wrong; eta_W zero; the decay deleted."""
    c = random_circuit(5, algorithm=algo, downstream_widths=None, downstream_ratio=1.0,
                       eta={"Wbar": 0.11})  # kp trains Wbar at eta.W: an explicit eta.Wbar must equal it
    w0 = init_weights(c)
    x, y = data_for(c, 3)
    ref_w, _ = matrix_reference(c, w0, x, y)
    new_w, _ = RateNetwork(c, w0).run_trials(x, y)
    assert rel_err(new_w, ref_w) <= ONE_SHOT_TOL
    assert_updates_close(new_w, ref_w, w0, ONE_SHOT_TOL)
    for k in range(1, c.n_layers):
        assert np.array_equal(new_w[f"V{k}"], w0[f"V{k}"])  # V = I fixed
        changed = not np.array_equal(new_w[f"Wbar{k}"], w0[f"Wbar{k}"])
        assert changed == (algo == "kp")


def test_cross_entropy_error_module(assert_updates_close):
    """Catches: the softmax of the error module unnormalised (Z dropped) or its sign flipped;
    any group's eta zero at rate level."""
    c = random_circuit(6, "relu_jacobian", loss="cross_entropy")
    w0 = init_weights(c)
    x, y = data_for(c, 3)
    ref_w, ref_act = matrix_reference(c, w0, x, y)
    new_w, act = RateNetwork(c, w0).run_trials(x, y)
    assert rel_err(new_w, ref_w) <= ONE_SHOT_TOL
    assert_updates_close(new_w, ref_w, w0, ONE_SHOT_TOL)
    K = c.n_layers
    np.testing.assert_allclose(act[f"hbar{K}"], ref_act[f"hbar{K}"], atol=1e-8)


# ----------------------------------------------------------------- single synapse vs its ODE


def _single_synapse(dt):
    c = Circuit.from_dict({"hidden": [], "input_width": 1, "output_width": 1, "plastic": ["W"], "gamma": 0.1,
                           "eta": {"W": 0.5},
                           "rate": {"tau_up": 2.0, "tau_down": 1.0, "dt": dt, "t_forward": 1.0,
                                    "t_feedback": 1.0, "t_plasticity": 3.0, "plasticity": "continuous"}})
    net = RateNetwork(c, {"W0": np.array([[0.3]])})
    key = net.record("W0", "w")
    new_w, _ = net.run_trials(np.array([[0.8]]), np.array([[1.5]]))
    r = net.recordings[key]
    return r["t"], r["values"][:, 0, 0], new_w["W0"][0, 0]


def _single_synapse_ode(t):
    """Urbanczik-Senn-style reduced check: the circuit with one W synapse, integrated
    independently (scipy) in continuous time.  h0 = x, tau_up h1' = -h1 + w h0,
    tau_down hbar' = -hbar + g_fb (y - h1), w' = g_p (eta hbar h0 - gamma w) / t_p."""
    from scipy.integrate import solve_ivp

    tau_u, tau_d, eta, gamma, x, y = 2.0, 1.0, 0.5, 0.1, 0.8, 1.5

    def f(_, s, fb, p):
        h1, hb, w = s
        return [(-h1 + w * x) / tau_u, (-hb + fb * (y - h1)) / tau_d, p * (eta * hb * x - gamma * w) / 3.0]

    state, out = [0.0, 0.0, 0.3], []
    for a, b, fb, p in ((0.0, 1.0, 0, 0), (1.0, 2.0, 1, 0), (2.0, 5.0, 1, 1)):
        sel = t[(t >= a - 1e-9) & (t < b - 1e-9)]
        sol = solve_ivp(f, (a, b), state, args=(fb, p), method="DOP853", rtol=1e-11, atol=1e-13,
                        dense_output=True)
        out.append(sol.sol(sel)[2])
        state = sol.y[:, -1]
    return np.concatenate(out), state[2]


def test_single_w_synapse_trajectory_matches_its_ode():
    """One W synapse against an independent (scipy) integration of its ODE system.

    Catches: T_p wrong; the decay deleted; the plasticity ODE's sign flipped."""
    errors = []
    for dt in (0.01, 0.005):
        t, w, final = _single_synapse(dt)
        assert t.shape == w.shape == (int(round(5.0 / dt)),)
        ode, ode_final = _single_synapse_ode(t)
        change = np.abs(ode - 0.3).max()
        errors.append(np.abs(w - ode).max() / change)
        assert abs(final - ode_final) / change < 3e-3
    # forward Euler: the error is first order in dt (~dt/tau), and halves with dt
    assert errors[0] < 3e-3
    assert 1.6 < errors[0] / errors[1] < 2.4


def test_single_w_synapse_matches_an_euler_replica():
    """Catches: the update order of one time step changed (plasticity before the summed inputs;
    synchronous Euler reads the previous step); T_p wrong; the decay deleted; the sign of the
    plasticity ODE flipped."""
    dt, tau_u, tau_d, eta, gamma, x, y = 0.01, 2.0, 1.0, 0.5, 0.1, 0.8, 1.5
    t, w, final = _single_synapse(dt)
    h0 = h1 = hb = 0.0
    ww, traj = 0.3, []
    for n in range(t.size):  # the same synchronous Euler step: inputs, then weights, then rates
        traj.append(ww)
        fb, p = float(n >= 100), float(n >= 200)
        ww, h1, hb, h0 = (ww + dt * p * (eta * hb * h0 - gamma * ww) / 3.0, h1 + dt * (ww * h0 - h1) / tau_u,
                          hb + dt * (fb * (y - h1) - hb) / tau_d, x)
    np.testing.assert_allclose(w, traj, rtol=1e-12, atol=1e-14)
    assert abs(final - ww) < 1e-12


# ----------------------------------------------------------------- protocol hooks


def test_freeze_and_lesion(assert_updates_close):
    """Catches: the freeze ignored (a frozen matrix learning); a lesion not zeroing the weights;
    eta_W zero at rate level (with V lesioned, Wbar and Vbar get no signal)."""
    c = random_circuit(7, "relu_jacobian", hidden=[3, 4], downstream_widths=[5, 6])
    w0 = init_weights(c)
    x, y = data_for(c, 3)
    net = RateNetwork(c, w0)
    assert net.hooks.freeze("W1") == ["W1"]
    assert net.hooks.lesion("V") == ["V1", "V2"]
    new_w, act = net.run_trials(x, y)
    assert np.array_equal(new_w["W1"], w0["W1"])
    assert not np.array_equal(new_w["W0"], w0["W0"])
    assert not np.any(new_w["V1"]) and not np.any(new_w["V2"])
    # the same as the matrix level with W1 not learning and V = 0 (Wbar then has no signal)
    w_ref = dict(w0, V1=np.zeros_like(w0["V1"]), V2=np.zeros_like(w0["V2"]))
    mat = MatrixNetwork(c, copy.deepcopy(w_ref))
    for i in range(3):
        deltas = mat.updates(mat.activities(x[i:i + 1], y[i:i + 1]))
        deltas = {k: v for k, v in deltas.items() if k not in ("W1", "V1", "V2")}
        mat.apply(deltas)
    assert rel_err(new_w, mat.weights) <= ONE_SHOT_TOL
    assert_updates_close(new_w, mat.weights, w_ref, ONE_SHOT_TOL)  # W1 frozen, V1/V2 held at 0
    net.hooks.unfreeze("W")
    new_w2, _ = net.run_trials(x, y)
    assert not np.array_equal(new_w2["W1"], new_w["W1"])
    assert not np.any(new_w2["V1"])  # a lesion stays


def test_clamp_and_stimulate():
    """Catches: a clamp not holding its value (checked: reaching half of it)."""
    c = random_circuit(8)
    K = c.n_layers
    net = RateNetwork(c)
    W1 = net.get_weights()["W1"]
    x, y = data_for(c, 2)
    net.hooks.clamp("h1", 0.7)
    net.hooks.clamp(f"hbar{K}", [0.25], neurons=[0])
    net.hooks.stimulate("h0", 0.5)
    _, act = net.run_trials(x, y)
    np.testing.assert_allclose(act["h1"], 0.7, rtol=1e-13)
    np.testing.assert_allclose(act[f"hbar{K}"][:, 0], 0.25, rtol=1e-13)
    np.testing.assert_allclose(act["h0"], x + 0.5, rtol=1e-13)
    # downstream of the clamp, the circuit computes with the clamped value (trial 0: initial W1)
    a2 = act["h1"][0] @ W1.T
    np.testing.assert_allclose(act["h2"][0], np.maximum(a2, 0) if K > 2 else a2, atol=1e-8)
    net.hooks.unclamp("h1")
    net.hooks.stimulate("h0", None)
    _, act2 = net.run_trials(x, y)
    assert not np.allclose(act2["h1"], 0.7)
    np.testing.assert_allclose(act2["h0"], x, rtol=1e-13)


def test_per_trial_stimulus_shape_is_checked():
    """Catches: the trial-count check of per-trial stimuli deleted."""
    c = random_circuit(8)
    net = RateNetwork(c)
    x, y = data_for(c, 2)
    net.hooks.stimulate("h1", np.zeros((3, c.widths[1])))
    with pytest.raises(Exception, match="3 trials"):
        net.run_trials(x, y)


def test_recordings_have_the_right_shapes():
    """Recording shapes, clocks and the matrix layout of weight recordings."""
    c = random_circuit(9)
    net = RateNetwork(c)
    x, y = data_for(c, 3)
    k1 = net.record("h1", "I_apical", dt=1.0)
    k2 = net.record("hbar1", "hbar", indices=[0, 2])
    k3 = net.record("W0", "w", dt=FAST_RATE["t_forward"])
    w_init = net.get_weights()
    net.run_trials(x, y)
    T = 45.0  # ms per trial
    r1, r2, r3 = (net.recordings[k] for k in (k1, k2, k3))
    assert r1["values"].shape == (3 * int(T / 1.0), c.widths[1])
    assert r2["values"].shape == (3 * int(T / 0.5), 2)
    # the recording clock runs over the whole run: t = 0, 20, ..., 120 ms (3 trials = 135 ms)
    np.testing.assert_allclose(r3["t"], np.arange(0.0, 3 * T, 20.0))
    assert r3["values"].shape == (7, c.widths[1], c.widths[0])
    np.testing.assert_allclose(np.diff(r1["t"]), 1.0)
    np.testing.assert_allclose(r3["values"][0], w_init["W0"], rtol=1e-14)  # matrix layout (d_1 x d_0)


# ----------------------------------------------------------------- standalone


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """One cpp_standalone build for this module (about 30 s on 2 cores)."""
    c = random_circuit(11, "relu_jacobian", hidden=[4], downstream_widths=[6])
    build = tmp_path_factory.mktemp("rate_cpp")
    w0 = init_weights(c)
    x, y = data_for(c, 3)
    net = RateNetwork(c, w0, device="cpp_standalone", build_dir=build, compile_jobs=2)
    new_w, act = net.run_trials(x, y)
    runner = net.last_runner
    yield {"circuit": c, "w0": w0, "x": x, "y": y, "net": net, "new_w": new_w, "act": act,
           "runner": runner, "build": build, "mtime": runner.binary_mtime()}
    devices.select_device("runtime")


@pytest.mark.slow
def test_standalone_equals_runtime_to_rounding(standalone, assert_updates_close):
    """cpp_standalone equals runtime to rounding, and the matrix step.

    Catches: a rule term deleted at rate level (checked: eta_W = 0)."""
    s = standalone
    assert s["runner"].n_compiles == 1
    new_w, act = RateNetwork(s["circuit"], s["w0"]).run_trials(s["x"], s["y"])
    assert rel_err(s["new_w"], new_w) <= 1e-12
    for k in act:
        np.testing.assert_allclose(s["act"][k], act[k], rtol=1e-11, atol=1e-13)
    ref_w, _ = matrix_reference(s["circuit"], s["w0"], s["x"], s["y"])
    assert rel_err(s["new_w"], ref_w) <= ONE_SHOT_TOL
    assert_updates_close(s["new_w"], ref_w, s["w0"], ONE_SHOT_TOL)


@pytest.mark.slow
def test_standalone_rerun_with_new_values_does_not_recompile(standalone):
    """New run-time values (eta, gamma, seed, data) reach the compiled binary without a
    recompile; a padded last run does not change the weights.

    Catches: a rule term deleted at rate level (checked: eta_W = 0)."""
    s = standalone
    c = s["circuit"].with_overrides({"eta.W": 0.05, "gamma": 0.0, "seed": 3})  # same structure
    w0 = init_weights(c)
    x, y = data_for(c, 3, seed=9)
    net = RateNetwork(c, w0, device="cpp_standalone", build_dir=s["build"], compile_jobs=2)
    new_w, _ = net.run_trials(x, y)
    assert net.last_runner is s["runner"]
    assert s["runner"].n_compiles == 1
    assert s["runner"].binary_mtime() == s["mtime"]
    ref_w, _ = matrix_reference(c, w0, x, y)
    assert rel_err(new_w, ref_w) <= ONE_SHOT_TOL
    # 5 trials on the 3-trial binary: one full run and one padded run
    x5, y5 = data_for(c, 5, seed=10)
    new_w, act = net.run_trials(x5, y5)
    ref_w, ref_act = matrix_reference(c, ref_w, x5, y5)
    assert rel_err(new_w, ref_w) <= ONE_SHOT_TOL
    assert act["h1"].shape == (5, c.widths[1])
    np.testing.assert_allclose(act["h1"], ref_act["h1"], atol=1e-8)
    # learning rates, gamma, time constants are run-time values; the plasticity mode is not
    # (one_shot runs the plasticity ODEs once per trial, continuous every step): another build
    cc = c.with_overrides({"rate.tau_up": 0.8, "rate.tau_down": 1.2, "gamma": 0.02})
    assert RateNetwork(cc, device="cpp_standalone", build_dir=s["build"]).runner(3) is s["runner"]
    cc = c.with_overrides({"rate.plasticity": "continuous"})
    assert RateNetwork(cc, device="cpp_standalone", build_dir=s["build"]).runner(3).hash != s["runner"].hash


@pytest.mark.cuda_compile
def test_cuda_standalone_project_generates(tmp_path, cuda_toolchain):
    """Generation only.  Without brian2cuda / nvcc / cuRAND it skips, under CI it fails."""
    c = random_circuit(12, hidden=[3], downstream_widths=[4])
    net = RateNetwork(c, device="cuda_standalone", build_dir=tmp_path / "cuda")
    runner = net.compile(2, compile=False)  # generation only; compiling takes minutes
    main = (runner.build_dir / "main.cu").read_text()
    assert "set_from_command_line" in main  # run_args work on the GPU build too
