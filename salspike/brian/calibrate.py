"""The transfer function of a spiking tier, measured: `salspike calibrate`.

A tier whose rate has no closed form (two_compartment: LIF soma with refractoriness and
adaptation) is simulated as unconnected neurons of exactly the network's equations
(models/spike_equations.toml), each driven through its basal current by an Ornstein-Uhlenbeck
input of mean mu and sd sigma with correlation time spike.tau_s,

    tau_s dI_ff/dt = mu - I_ff + sigma sqrt(2 tau_s) xi(t),

the Gaussian limit of the shot noise the network delivers (docs/spike_network.md).  The rate over
``t_measure`` after ``t_warmup`` at each (mu, sigma) of the grid in
``[tiers.<tier>.calibration]`` is the table ``spike.calibration = [[mu, sigma, rate_Hz,
filtered_var, power0], ...]`` that the matrix level's ``spike.matched_transfer = "calibrated"``
interpolates.  The last two columns are the output train's statistics that the next layer and a
read-out window see (`train_moments`), in activity units (a spike counts 1 / s):

* ``filtered_var``: Var[x(t)] of the train filtered as a synapse does, x = sum_sp e^{-(t - t_sp)/tau_s} / (s tau_s)
  (Poisson: a / (2 s tau_s)); a presynaptic neuron j adds W_ij^2 filtered_var_j to the input variance;
* ``power0``: the zero-frequency power S(0) = Var[count(T)] / (s^2 T) over windows T >> the
  correlation times (Poisson: a / s); a window's activity estimate has variance S(0) / T.

A LIF soma with refractoriness and adaptation fires more regularly than Poisson, so both are
measured rather than assumed (docs/spike_network.md, The matched rate model).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from ..circuit import Circuit
from ..errors import ConfigError
from . import devices
from .assembly import using_codegen_target
from .spike_models import SpikeModels, load_spike_models

__all__ = ["measure_transfer", "calibrate_model_file", "train_moments"]

_OU = "dI_ff/dt = (mu_c - I_ff) / tau_s + sigma_c * sqrt(2 / tau_s) * xi : 1"


#: window of the count-variance estimate of S(0): long against tau_s (20 ms) and the soma's
#: adaptation (tau_w = 100 ms), short enough for 40 windows per neuron in a 20 s measurement
POWER_WINDOW_S = 0.5


def train_moments(spike_times, t_start: float, t_stop: float, rate_scale_hz: float, tau_s_s: float,
                  window_s: float = POWER_WINDOW_S, n_samples: int = 4000) -> tuple[float, float]:
    """(filtered_var, power0) of spike trains (a list of arrays of spike times in s, one per
    neuron, all in [t_start, t_stop]), pooled over the trains, in activity units:

    * filtered_var = Var[x(t)], x(t) = sum_{t_sp < t} exp(-(t - t_sp) / tau_s) / (s tau_s), evaluated
      exactly at ``n_samples`` regular times per train after the first 5 tau_s (the filter's start);
    * power0 = Var[n_T] / (s^2 T), n_T the count in consecutive windows T = ``window_s``.

    Poisson trains of rate r give r / (2 s^2 tau_s) and r / s^2; a regular train less of both."""
    s, tau = float(rate_scale_hz), float(tau_s_s)
    t0 = t_start + 5 * tau
    grid = np.linspace(t0, t_stop, n_samples, endpoint=False)
    values, counts = [], []
    edges = np.arange(t_start, t_stop - window_s + 1e-12, window_s)
    edges = np.append(edges, edges[-1] + window_s) if edges.size else edges
    for t in spike_times:
        t = np.sort(np.asarray(t, dtype=float))
        # x just after each spike: x_n = x_{n-1} e^{-dt/tau} + 1 / (s tau)
        after = np.empty(t.size)
        acc, last = 0.0, -np.inf
        for n, tn in enumerate(t):
            acc = acc * np.exp(-(tn - last) / tau) + 1.0 / (s * tau)
            after[n], last = acc, tn
        if t.size:
            idx = np.searchsorted(t, grid, side="right") - 1
            last_sp = np.maximum(idx, 0)
            lag = np.where(idx >= 0, grid - t[last_sp], np.inf)  # before the first spike: x = 0
            values.append(after[last_sp] * np.exp(-lag / tau))
        else:
            values.append(np.zeros(grid.size))
        if edges.size >= 2:
            counts.append(np.histogram(t, edges)[0])
    filtered_var = float(np.var(np.concatenate(values)))
    power0 = float(np.var(np.concatenate(counts), ddof=1) / (s * s * window_s)) if counts else float("nan")
    return filtered_var, power0


def measure_transfer(circuit: Circuit, points: np.ndarray, *, repeats: int = 4, seed: int = 0,
                     t_measure_s: float | None = None, models: SpikeModels | None = None,
                     moments: bool = False):
    """Rates (Hz) and their standard errors of the tier's hidden neuron at ``points`` (n, 2) of
    (mu, sigma), ``repeats`` independent neurons per point (runtime device, numpy); with
    ``moments`` also the output train's (filtered_var, power0) per point (`train_moments`, the
    ``repeats`` neurons pooled)."""
    import brian2

    models = models or load_spike_models()
    tier = circuit["spike.tier"]
    if tier == "poisson":
        raise ConfigError("calibrate: the poisson tier's transfer function is closed-form (spike.matched_transfer "
                          "= 'lnp'); set spike.tier = \"two_compartment\" to calibrate")
    neuron = models.neuron("upstream", tier=tier)
    cal = models.calibration(tier)
    eqs = neuron["equations"]
    if "dI_ff/dt = -I_ff / tau_s : 1" not in eqs:
        raise ConfigError(f"{models.source}: the {tier} hidden neuron has no basal current I_ff to drive")
    eqs = eqs.replace("dI_ff/dt = -I_ff / tau_s : 1", _OU) + "mu_c : 1 (constant)\nsigma_c : 1 (constant)\n"
    pts = np.repeat(np.asarray(points, dtype=float), repeats, axis=0)
    n = len(pts)
    t_measure = cal["t_measure"] if t_measure_s is None else t_measure_s * brian2.second
    t_warmup = cal["t_warmup"]
    dt = circuit["spike.dt"] * brian2.ms
    devices.select_device("runtime")
    brian2.start_scope()
    brian2.seed(seed)
    zeros = brian2.TimedArray(np.zeros((1, n)), dt=dt, name="calib_zeros")
    one = brian2.TimedArray(np.ones(1), dt=dt, name="calib_one")
    ns = {**models.parameters(tier), "stim": zeros, "ext": zeros, "win": one}
    g = brian2.NeuronGroup(n, eqs, threshold=neuron["threshold"], reset=neuron["reset"], method="euler",
                           refractory=neuron["refractory"] or False, namespace=ns, dt=dt, name="calib_neurons")
    g.v = ns["E_L"]
    g.mu_c, g.sigma_c = pts[:, 0], pts[:, 1]
    g.I_ff = pts[:, 0]
    g.apical_on = 0.0
    g.s_rate = circuit["spike.rate_scale"] * brian2.Hz
    g.tau_s = circuit["spike.tau_s"] * brian2.ms
    g.tau_tr = circuit["spike.tau_trace"] * brian2.ms
    net = brian2.Network(g)
    with using_codegen_target("numpy"):
        net.run(t_warmup, namespace={})
        mon = brian2.SpikeMonitor(g, record=moments, name="calib_counts")
        net.add(mon)
        net.run(t_measure, namespace={})
    rates = np.asarray(mon.count[:], dtype=float) / float(t_measure)
    per = rates.reshape(-1, repeats)
    se = per.std(axis=1, ddof=1) / np.sqrt(repeats) if repeats > 1 else np.full(len(per), np.nan)
    if not moments:
        return per.mean(axis=1), se
    trains = mon.spike_trains()
    t_start, t_stop = float(t_warmup), float(t_warmup + t_measure)
    stats = np.array([train_moments([np.asarray(trains[i] / brian2.second) for i in range(p * repeats, (p + 1) * repeats)],
                                    t_start, t_stop, circuit["spike.rate_scale"], circuit["spike.tau_s"] * 1e-3)
                      for p in range(len(per))])
    return per.mean(axis=1), se, stats


def calibrate_model_file(model_path: str | Path, out: str | Path, *, seed: int = 0,
                         models: SpikeModels | None = None, grid: tuple[list, list] | None = None,
                         t_measure_s: float | None = None) -> dict:
    """Measure the transfer function of the model's tier on the grid of the equations file,
    check it at held-out points (the centres of the grid cells) and write the model with
    ``spike.calibration`` (and ``spike.tier``) to ``out``.  Returns the held-out check."""
    models = models or load_spike_models()
    circuit = Circuit.load(model_path)
    if circuit["spike.tier"] == "poisson":
        circuit = circuit.with_overrides({"spike.tier": "two_compartment"}, source=str(model_path))
    cal = models.calibration(circuit["spike.tier"])
    mu, sigma = (np.array(cal["mu"]), np.array(cal["sigma"])) if grid is None else map(np.array, grid)
    points = np.array([[m, s] for m in mu for s in sigma])
    rates, se, stats = measure_transfer(circuit, points, seed=seed, models=models, t_measure_s=t_measure_s,
                                        moments=True)
    rows = [[float(m), float(s), round(float(r), 4), float(f"{fv:.5g}"), float(f"{p0:.5g}")]
            for (m, s), r, (fv, p0) in zip(points, rates, stats)]
    held = np.array([[(a + b) / 2, (c + d) / 2] for a, b in zip(mu, mu[1:]) for c, d in zip(sigma, sigma[1:])])
    held_rates, held_se = measure_transfer(circuit, held, seed=seed + 1, models=models, t_measure_s=t_measure_s)
    from ..circuit.functions import CalibratedTransfer

    table = CalibratedTransfer(rows, 1.0)
    predicted = table(held[:, 0], held[:, 1])
    err = np.abs(predicted - held_rates)
    # the table's own error at the neighbouring grid points adds to the held-out point's
    ok = err <= np.maximum(1.0, 3 * np.sqrt(held_se ** 2 + np.nanmean(se ** 2)))
    calibrated = circuit.with_overrides({"spike.calibration": rows}, source=str(model_path))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"# salspike calibrate ({stamp}): {circuit['spike.tier']} transfer function of {Path(models.source).name}\n"
              f"# measured from {model_path}; held-out grid-cell centres: {int(ok.sum())}/{ok.size} within "
              f"max(1 Hz, 3 SE), largest error {err.max():.2f} Hz\n")
    from ..results import atomic_write_text

    atomic_write_text(str(out), header + calibrated.to_toml())
    return {"held_out": held.tolist(), "measured_Hz": held_rates.tolist(), "se_Hz": held_se.tolist(),
            "interpolated_Hz": predicted.tolist(), "within": int(ok.sum()), "points": int(ok.size),
            "max_error_Hz": float(err.max())}

