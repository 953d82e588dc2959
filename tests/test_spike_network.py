"""The closed-loop spiking network (salspike.brian.spike) against closed forms and its rate model.

* Deterministic: currents and tags recorded in a run equal their closed form, recomputed from the
  recorded spike trains, to 1e-9; the consolidation equals ``w + eta tag / (s T) - c w``.
* Silencing propagates one way (h1 silenced: h2 and h3 silent; h2 silenced: h1 still fires), and a
  synapse whose presynaptic neuron is silent changes by exactly its decay.
* Propagation and transfer function (paper widths, frozen weights, 5 s windows, 4 seeds): per-neuron
  rates against the matched LNP rate model (`spike.matched_transfer = "lnp"`), z-scores with the
  variance of docs/spike_network.md.
* Expected updates: W's update against the rate rule at the measured rates (cosine), and the
  loop-correlation bias of Wbar, V and Vbar bounded.
* Learning: `salspike train --level spike` on digits learns above chance, reads out from spikes and
  records spike trains into the run folder.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("brian2")

from salspike.circuit import Circuit, init_weights  # noqa: E402
from salspike.brian.spike import SpikeNetwork  # noqa: E402
from salspike.cli import main  # noqa: E402
from salspike.errors import ConfigError, ShapeError  # noqa: E402
from salspike.levels import make_level  # noqa: E402
from salspike.matrix.engine import MatrixNetwork  # noqa: E402

SHORT = {"spike.t_settle": 20.0, "spike.t_window": 20.0, "spike.dt": 0.25, "spike.rate_scale": 40.0}


def _cos(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _exp_filter(spike_steps, weights, n_steps, decay):
    """sum over spikes at step m <= n of weight * decay^(n - m), for n = 0..n_steps-1."""
    out = np.zeros(n_steps)
    for m, w in zip(spike_steps, weights):
        out[m:] += w * decay ** np.arange(n_steps - m)
    return out


def test_currents_tags_and_consolidation_equal_their_closed_form(small_circuit):
    """Catches: a wrong synaptic jump (w / (s tau_s)), a wrong filter, a tag that samples the wrong
    postsynaptic quantity or outside the window, and a wrong consolidation (eta tag / (s T) - c w).
    The closed forms are recomputed in numpy from the recorded spike trains."""
    c = small_circuit.with_overrides({**SHORT, "gamma": 0.01, "spike.rate_scale": 100.0, "spike.t_settle": 60.0,
                                      "spike.t_window": 40.0})
    rng = np.random.default_rng(1)
    w0 = init_weights(c)
    net = SpikeNetwork(c, w0, device="runtime", seed=3)
    k_sp = net.record("h0", "spikes")
    k_i = net.record("h1", "I_ff")
    k_ap = net.record("h1", "apical")
    k_tag = net.record("W0", "tag")
    x, y = rng.uniform(0.5, 1.0, (1, 8)), np.eye(3)[[1]]
    new, acts = net.run_trials(x, y)
    rec = net.recordings
    dt, s, tau = c["spike.dt"], c["spike.rate_scale"], c["spike.tau_s"]
    clock = net.clock
    spikes_t, spikes_i = rec[k_sp]["t"], rec[k_sp]["i"]
    steps = np.round(spikes_t / dt).astype(int)
    assert len(steps) > 20, "too few input spikes for a meaningful check"
    I = rec[k_i]["values"]  # (n_steps, 6), recorded at the end of each step of the trial
    n_steps = I.shape[0]
    W = w0["W0"]
    decay = np.exp(-dt / tau)
    for post in range(W.shape[0]):
        expect = _exp_filter(steps, W[post, spikes_i] / (s * tau * 1e-3), n_steps, decay)
        np.testing.assert_allclose(I[:, post], expect, atol=1e-9, rtol=0)
    apical = rec[k_ap]["values"]
    tags = rec[k_tag]["values"]  # (n_steps, 48): synapse order of dense_indices (pre-major)
    in_window = (steps >= clock.n_settle) & (steps < clock.n_trial)
    settle_reads = apical[steps[~in_window & (steps < clock.n_settle)]]
    assert np.abs(settle_reads).max() > 0, "the settling period must hold apical input (or the gate is untested)"
    tag_end = np.zeros(W.shape)
    for m, j in zip(steps[in_window], spikes_i[in_window]):
        tag_end[:, j] += apical[m, :]
    last = clock.n_trial - 1
    np.testing.assert_allclose(tags[last].reshape(W.shape[1], W.shape[0]).T, tag_end, atol=1e-9, rtol=0)
    T = clock.t_window_ms * 1e-3
    expect_w = w0["W0"] + c["eta.W"] * tag_end / (s * T) - c["gamma"] * w0["W0"]
    np.testing.assert_allclose(new["W0"], expect_w, atol=1e-9, rtol=0)
    assert acts["h0"].shape == (1, 8)


@pytest.mark.parametrize("n_trial", [40, 4000, 9999, 10000, 21000, 200000])
def test_the_trial_clock_ticks_after_the_last_trial(n_trial):
    """Catches the lost last trial of long trials: Brian2 rounds a run's end down to a clock tick
    when it lies within 1e-4 of the tick (``Clock.epsilon_dt``), so with a one-step tail the
    per-trial clock (dt = one trial), which consolidates and counts at the start of each trial,
    dropped its final tick for trials of 10,000 steps or more: the last trial's update and spike
    counts were silently lost (`TrialClock.n_tail`).  Asserted with Brian2's own clock arithmetic:
    the trial clock of a run of n trials ticks n + 1 times (at 0, T, ..., n T)."""
    from brian2 import Clock, ms
    from salspike.brian.spike import TrialClock

    clock = TrialClock(0.25, n_trial // 2, n_trial - n_trial // 2)
    for n in (1, 3, 50):
        trial = Clock(dt=clock.t_trial_ms * ms)
        assert trial._calc_timestep(clock.run_ms(n) * 1e-3) == n + 1
        assert Clock(dt=0.25 * ms)._calc_timestep(clock.run_ms(n) * 1e-3) == n * n_trial + clock.n_tail


def test_silencing_propagates_upwards_only_and_silent_synapses_only_decay(small_circuit):
    """Catches: a silenced population that still drives its targets, propagation against the
    arrow (silencing h2 silencing h1), and plasticity at a synapse whose presynaptic neuron is
    silent (its change must be exactly -gamma w)."""
    c = small_circuit.with_overrides({**SHORT, "spike.t_window": 100.0, "gamma": 0.02})
    w0 = init_weights(c)
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0.5, 1.0, (2, 8)), np.eye(3)[[0, 2]]
    lvl = make_level("spike", c, w0, device="runtime", seed=5)
    lvl.silence("h1")
    acts = lvl.step(x, y, online=True)
    new = lvl.weights
    assert np.all(acts["h1"] == 0) and np.all(acts["h2"] == 0) and np.all(acts["h3"] == 0)
    decay_only = w0["W1"] * (1 - c["gamma"]) ** 2
    np.testing.assert_allclose(new["W1"], decay_only, rtol=0, atol=1e-12)
    np.testing.assert_allclose(new["V1"], w0["V1"] * (1 - c["gamma"]) ** 2, rtol=0, atol=1e-12)
    assert np.abs(new["W0"] - w0["W0"] * (1 - c["gamma"]) ** 2).max() > 1e-6  # h0 fires: W0 learns
    lvl.close()
    lvl = make_level("spike", c, w0, device="runtime", seed=5)
    lvl.silence("h2")
    acts = lvl.activities(x, y)
    assert np.all(acts["h2"] == 0) and np.all(acts["h3"] == 0)
    assert np.abs(acts["h1"]).sum() > 0, "silencing h2 must not silence h1 (propagation is one-way)"
    lvl.close()


def test_bad_inputs_are_refused(small_circuit):
    """Catches: negative input rates, an unaligned window, short-term modulation (a loop the spike
    level does not run) and a calibrated rate model without its table."""
    net = SpikeNetwork(small_circuit.with_overrides(SHORT), device="runtime")
    with pytest.raises(ShapeError, match=">= 0"):
        net.run_trials(-np.ones((1, 8)), np.zeros((1, 3)))
    with pytest.raises(ConfigError, match="multiple of spike.dt"):
        SpikeNetwork(small_circuit.with_overrides({**SHORT, "spike.t_window": 20.1}))
    with pytest.raises(ConfigError, match="salspike calibrate"):  # the rate model of an uncalibrated tier
        MatrixNetwork(small_circuit.with_overrides({"spike.matched_transfer": "calibrated"})).predict(np.ones((1, 8)))
    with pytest.raises(ConfigError, match="modulation"):
        SpikeNetwork(small_circuit.with_overrides({**SHORT, "modulation_alpha": 0.1}))


# --------------------------------------------------------------------------- statistics (cpp_standalone)

PAPER = {"hidden": [200, 200, 200], "input_width": 64, "output_width": 10, "spike.t_window": 5000.0}
N_SEEDS = 4
N_UPDATE_SEEDS = 16


@pytest.fixture(scope="module")
def paper_runs(paper_model_path, digits, tmp_path_factory):
    """Frozen-weight read-outs (4 digits rows, 4 seeds, 5 s windows) and plastic runs of the same
    rows with a tiny learning rate (for the expected updates), from one compiled binary."""
    c = Circuit.load(paper_model_path, PAPER)
    w0 = init_weights(c)
    x, y = digits.x_train[:4], digits.y_train[:4]
    build = tmp_path_factory.mktemp("spike_paper")
    reads = []
    for s in range(N_SEEDS):
        net = SpikeNetwork(c, w0, device="cpp_standalone", build_dir=build, seed=100 + s)
        reads.append(net.readout(x, y))
    tiny = c.with_overrides({"eta.W": 1e-6, "eta.Wbar": 1e-6, "eta.V": 1e-6, "eta.Vbar": 1e-6})
    updates = []
    for s in range(N_UPDATE_SEEDS):  # 4 trials of the first row per seed (the read-outs' binary)
        net = SpikeNetwork(tiny, w0, device="cpp_standalone", build_dir=build, seed=200 + s)
        new, acts = net.run_trials(np.repeat(x[:1], 4, 0), np.repeat(y[:1], 4, 0))
        updates.append(({k: (new[k] - w0[k]) / 1e-6 / 4 for k in new}, acts))
    return {"circuit": c, "w0": w0, "x": x, "y": y, "reads": reads, "updates": updates}


def test_propagation_matches_the_matched_rate_model(paper_runs):
    """Catches: a transfer function that is not the LNP mean rate (the ReLU model is rejected by
    the same test: its z-scores are 5-10), a wrong current scale, propagation errors layer by
    layer, and the skewness (Edgeworth) term of the shot noise.  The variance of a neuron's window
    rate is S(0) / T, S(0) the zero-frequency power of its spike train propagated layer by layer
    (`MatrixNetwork.window_power`, docs/spike_network.md).  Measured (4 rows x 5 s, paper widths,
    2026-12-02), 4 seeds: z rms 1.06, 1.10, 1.12, output 1.29, bias -0.20, -0.34, -0.46, -0.13 Hz;
    8 seeds: 1.06, 1.12, 1.15, output 1.20 (without the skewness term h1 1.20; with the old
    linear-response variance 1.11, 1.20, 1.27, output 1.42).  Asserted: hidden rms in [0.85, 1.2];
    the output (10 pairs x 4 rows = 40 z-scores, sampling SE of an rms 1 / sqrt(2 x 40) = 0.11)
    rms <= 1.2 + 2 SE; every layer's bias within max(1 Hz, 3 SE); mean rate per cell 5-20 Hz (an
    ON/OFF pair is two cells)."""
    r = paper_runs
    c, w0 = r["circuit"], r["w0"]
    matched = MatrixNetwork(c.with_overrides({"spike.matched_transfer": "lnp"}), w0)
    relu = MatrixNetwork(c, w0)
    ref = matched.activities(r["x"], r["y"]).as_arrays()
    ref_relu = relu.activities(r["x"], r["y"]).as_arrays()
    s, T = c["spike.rate_scale"], c["spike.t_window"]
    K = c.n_layers
    power = matched.window_power(r["x"])  # S(0) propagated layer by layer
    for k in range(1, K + 1):
        meas = np.stack([rd[f"h{k}"] for rd in r["reads"]])
        mean = meas.mean(0)
        var = power[f"h{k}"] / (T * 1e-3) / N_SEEDS
        z = (mean - ref[f"h{k}"]) / np.sqrt(var)
        z_relu = (mean - ref_relu[f"h{k}"]) / np.sqrt(var)
        rms, rms_relu = float(np.sqrt(np.mean(z ** 2))), float(np.sqrt(np.mean(z_relu ** 2)))
        bias_hz = float(np.mean(mean - ref[f"h{k}"])) * s
        se_hz = float(np.sqrt(np.mean(var) / mean.size)) * s
        # mean rate per cell: an ON/OFF pair is two cells, one of them silent at any time
        per_cell_hz = np.abs(mean).mean() * s / (2 if k == K else 1)
        print(f"h{k}: rate {per_cell_hz:.1f} Hz per cell, z rms {rms:.2f} (ReLU model {rms_relu:.2f}), "
              f"bias {bias_hz:+.2f} Hz (SE {se_hz:.2f} Hz)")
        assert rms_relu > 3 * rms
        margin = 0.0 if k < K else 2 / np.sqrt(2 * z.size)  # the output: 40 z-scores
        assert 0.85 <= rms <= 1.2 + margin
        assert abs(bias_hz) <= max(1.0, 3 * se_hz)
        assert 5.0 <= per_cell_hz <= 20.0


def test_expected_updates_follow_the_rate_rule_at_the_measured_rates(paper_runs):
    """Catches: a W tag that reads anything but the apical current (cosine with Vbar hbar h^T
    drops), a sign error in a signed (ON/OFF) pathway, and a consolidation normalisation off by a
    factor (the ratio of norms is checked).  Wbar, V and Vbar pick up the loop's spike
    correlations (an h^k fluctuation reaches hbar^{k+1} through the output and the error module);
    the test bounds that bias.  16 seeds x 4 trials x 5 s of one row, paper widths: W cosine >=
    0.99 (asserted; the issue's criterion), every other group cosine >= 0.98 and norm ratio
    within 10% (the bound on the correlation bias); measured numbers in docs/spike_network.md."""
    r = paper_runs
    c = r["circuit"]
    K = c.n_layers
    cos = {}
    for dw, acts in r["updates"]:
        h = {k: acts[f"h{k}"].mean(0) for k in range(K + 1)}
        hb = {k: acts[f"hbar{k}"].mean(0) for k in range(1, K + 1)}
        for k in range(K):
            vb = r["w0"][f"Vbar{k}"] if k < K - 1 else np.eye(c.widths[K])
            ref = np.outer(vb @ hb[k + 1], h[k])
            cos.setdefault(f"W{k}", []).append((dw[f"W{k}"], ref))
        for k in range(1, K):
            cos.setdefault(f"V{k}", []).append((dw[f"V{k}"], np.outer(hb[k], h[k])))
            cos.setdefault(f"Wbar{k}", []).append((dw[f"Wbar{k}"], np.outer(r["w0"][f"V{k}"] @ h[k], hb[k + 1])))
        for k in range(K - 1):
            cos.setdefault(f"Vbar{k}", []).append((dw[f"Vbar{k}"], np.outer(h[k + 1], hb[k + 1])))
    for name, pairs in cos.items():
        got, ref = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
        cs, ratio = _cos(got, ref), np.linalg.norm(got) / np.linalg.norm(ref)
        print(f"{name}: cosine {cs:.3f}, norm ratio {ratio:.2f}")
        assert cs >= (0.99 if name.startswith("W") and not name.startswith("Wbar") else 0.98)
        assert 0.9 <= ratio <= 1.1


def test_step_keeps_the_cross_level_contract_with_the_matched_rate_level(paper_runs):
    """The cross-level contract of `salspike step`: with long windows (16 seeds x 4 x 5 s) the
    spike level's update of every group has cosine >= 0.95 with the update the matched rate
    model (`spike.matched_transfer = "lnp"`, matrix level, online) computes from the same weights
    and rows.  Catches a spike level that drifts from its rate model (e.g. the ReLU model, or a
    wrong rate scale in the consolidation: the norm ratio is checked too)."""
    r = paper_runs
    c = r["circuit"].with_overrides({"spike.matched_transfer": "lnp"})
    ref_net = MatrixNetwork(c, r["w0"])
    ref = ref_net.updates(ref_net.activities(r["x"][:1], r["y"][:1]))
    eta = {g: c[f"eta.{g}"] for g in ("W", "Wbar", "V", "Vbar")}
    for name, want in ref.items():
        group = name.rstrip("0123456789")
        got = sum(dw[name] for dw, _ in r["updates"]) / len(r["updates"])
        want = want / eta[group]  # the fixture's updates are per unit learning rate
        cs, ratio = _cos(got, want), np.linalg.norm(got) / np.linalg.norm(want)
        print(f"{name}: cosine with the matched rate level {cs:.3f}, norm ratio {ratio:.2f}")
        assert cs >= 0.95 and 0.8 <= ratio <= 1.25


def test_spike_level_trains_on_digits_and_records(tmp_path):
    """Catches: a spike level whose learning does not reach the weights (accuracy at chance), a
    summary without its read-out entry, and --record that writes nothing.  The short CI version
    (100 trials); the issue's 300-trial comparison is a recorded result (docs/spike_network.md)."""
    out = tmp_path / "run"
    code = main(["train", "--level", "spike", "--device", "cpp_standalone", "--set", "hidden=[30]", "--epochs", "1",
                 "--n-train", "150", "--set", "eta.W=0.1", "--set", "eta.Wbar=0.01", "--set", "eta.V=0.01",
                 "--set", "eta.Vbar=0.01", "--set", "training.eval_batch=32", "--record", "h1:spikes",
                 "--out", str(out), "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["readout"]["level"] == "spike" and "spike counts" in summary["readout"]["what"]
    assert summary["final_test_accuracy"] > 0.2  # chance is 0.1
    rec = np.load(out / "recordings" / "epoch_001.npz")
    assert rec["h1_spikes_t"].size > 100 and rec["h1_spikes_i"].max() < 30


# --------------------------------------------------------------------------- tier two_compartment


def test_two_compartment_calibration_holds_at_held_out_points(small_circuit_path, tmp_path):
    """`salspike calibrate`'s table (a reduced grid, 3 s per point in CI; the full grid is a
    recorded result) predicts the LIF neuron's rate at the held-out centres of its grid cells
    within max(1 Hz, 3 SE), and its measured output statistics tell a regular (mean-driven) train
    from an irregular one.  Catches: a table written with the wrong axes order (interpolation
    then misses), a model file overwritten or left without its calibration, and a filtered
    variance that assumes Poisson output."""
    from salspike.brian.calibrate import calibrate_model_file

    out = tmp_path / "cal.toml"
    check = calibrate_model_file(small_circuit_path, out, grid=([0.0, 0.5, 1.0, 1.5], [0.25, 0.75, 1.25]),
                                 t_measure_s=3.0)
    print(check)
    assert check["within"] == check["points"]
    c = Circuit.load(out)
    assert c["spike.tier"] == "two_compartment" and len(c["spike.calibration"]) == 12
    table = np.array(c["spike.calibration"])
    rates = table[:, 2]
    assert rates.max() > 10 and rates.min() < 1  # the grid spans silence to firing
    # the output train's filtered variance against Poisson's a / (2 s tau_s) (full table: 0.37 at
    # mu 1.5, sigma 0.25, mean-driven and regular; 1.33 at 0.5, 0.75, fluctuation-driven)
    s, tau = c["spike.rate_scale"], c["spike.tau_s"] * 1e-3
    ratio = {(m, sd): fv / (r / s / (2 * s * tau)) for m, sd, r, fv, _ in table if r > 0}
    print("filtered variance / Poisson:", {k: round(v, 2) for k, v in ratio.items()})
    assert ratio[(1.5, 0.25)] < 0.6 and ratio[(0.5, 0.75)] > 0.8


def test_two_compartment_network_runs_closed_loop(small_circuit):
    """The two_compartment tier in the closed loop: hidden LIF neurons fire from their basal input
    only, W's tag reads the apical dendrite's own voltage v_d (not the soma, not an abstract
    trace), and silencing still propagates.  Catches: W's factor pointing at the soma or the
    current I_ap instead of v_d (the closed form from recorded v_d at presynaptic spikes)."""
    c = small_circuit.with_overrides({**SHORT, "spike.tier": "two_compartment", "spike.rate_scale": 100.0,
                                      "spike.t_window": 40.0})
    w0 = init_weights(c)
    net = SpikeNetwork(c, w0, device="runtime", seed=2)
    k_sp = net.record("h0", "spikes")
    k_vd = net.record("h1", "v_d")
    k_tag = net.record("W0", "tag")
    x, y = np.random.default_rng(1).uniform(0.5, 1.0, (1, 8)), np.eye(3)[[1]]
    net.run_trials(x, y)
    rec = net.recordings
    steps = np.round(rec[k_sp]["t"] / c["spike.dt"]).astype(int)
    vd, tags = rec[k_vd]["values"], rec[k_tag]["values"]
    W = w0["W0"]
    clock = net.clock
    tag_end = np.zeros(W.shape)
    for m, j in zip(steps, rec[k_sp]["i"]):
        if clock.n_settle <= m < clock.n_trial:
            tag_end[:, j] += vd[m, :]
    assert np.abs(tag_end).max() > 0
    np.testing.assert_allclose(tags[clock.n_trial - 1].reshape(W.shape[1], W.shape[0]).T, tag_end, atol=1e-9)
