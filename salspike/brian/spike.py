"""The SAL circuit as a closed-loop Brian2 spiking network: nothing outside Brian2 computes an
activity during a run.

Neuron and synapse models are data (``models/spike_equations.toml``, `load_spike_models`); the
derivations are in docs/spike_network.md.  Populations and synapse groups are the cross-level
layout (`salspike.circuit.circuit_layout`):

* h0 fires Poisson spikes at ``s [x + stim]_+`` (x from a TimedArray, one row per trial);
* h^{k+1} is driven only by the spikes of h^k through W^k (current ``I_ff``, filter tau_s) and
  fires at ``s [I_ff]_+`` (ReLU hidden layers; the linear output h^K is an ON/OFF pair);
* the error module hbar^K reads the output's ON - OFF spikes (trace ``yhat``, tau_readout) and
  the target y (TimedArray): ``e = y - yhat`` (MSE) or ``y - exp(yhat) / Z`` (cross-entropy,
  Z = sum_j exp(yhat_j) by divisive normalisation through all-to-all "norm" synapses);
* hbar^k is driven by the spikes of hbar^{k+1} through Wbar^k (``I_fb``), D_d applied inside
  the neuron (identity, ``1[I_lat > 0]`` with ``I_lat = V h`` from V^k, or ReLU); errors are
  ON/OFF pairs;
* the apical current ``I_ap`` of h^{k+1} receives Vbar^k hbar^{k+1} and does not drive the soma
  (Eq. 1): the activity graph has no cycle, so a trial is a settling period (``spike.t_settle``)
  then a plasticity and read-out window (``spike.t_window``), with no phases.

Plasticity inside the run: each presynaptic spike adds to its synapse's tag the postsynaptic
factor of the group's rule (W: the apical current; Wbar: the lateral current; V: the signed
trace of hbar^k; Vbar: the trace of h^{k+1}), gated to the window.  At the start of the next
trial's first step (before anything else of that step) a ``run_regularly`` consolidates ``w += eta tag / (s T) - c w`` (Eqs. 5-8 in expectation) and
clears the tag, so one call of `SpikeNetwork.run_trials` is ONE Brian2 run of many trials fed
by TimedArrays, with one compiled binary reused through ``run_args``.

Limitations: weights are signed (no Dale's law); the ON/OFF mirroring of a signed weight is an
idealisation; inputs must be >= 0 (rates); bp and wm (weight transport, mirror phase) and
short-term modulation (apical input driving the soma closes a loop) are refused.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..circuit import Circuit, Hooks, algorithm_plan, circuit_layout, init_weights
from ..errors import ConfigError, DivergenceError, ShapeError
from . import devices
from .assembly import NetworkAssembly, connection_indices, dense_indices, matrix_to_w, one_to_one_indices, w_to_matrix
from .runner import BrianRunner, shared_runner
from .spike_models import SpikeModels, load_spike_models
from .weights import BrianWeights

__all__ = ["SpikeNetwork", "SEED_ENV", "SPIKE_SCHEDULE", "closed_loop_spec"]

SEED_ENV = "SALSPIKE_SEED"
#: Brian2 slots of a time step: resets run right after thresholds, so a signed pair's spike
#: sign (``sgn``, set in the reset) is fixed before any synapse reads it or changes ``u``.
SPIKE_SCHEDULE = ["start", "groups", "thresholds", "resets", "synapses", "end"]
_ROLE_PREFIX = {"input": "input", "upstream": "upstream", "output": "output", "downstream": "downstream",
                "error": "error"}


def _steps(ms: float, dt: float, key: str, source: str) -> int:
    n = int(round(ms / dt))
    if abs(n * dt - ms) > 1e-9 * max(1.0, ms):
        raise ConfigError(f"{source}: {key} = {ms} ms is not an integer multiple of spike.dt = {dt} ms")
    return n


@dataclasses.dataclass(frozen=True)
class TrialClock:
    """Steps of one trial: settle, then window; the gate TimedArrays tick every ``g`` steps."""

    dt_ms: float
    n_settle: int
    n_window: int

    @property
    def n_trial(self) -> int:
        return self.n_settle + self.n_window

    @property
    def t_trial_ms(self) -> float:
        return self.n_trial * self.dt_ms

    @property
    def t_window_ms(self) -> float:
        return self.n_window * self.dt_ms

    @property
    def g(self) -> int:
        return math.gcd(self.n_settle, self.n_window) if self.n_settle else self.n_window

    @property
    def n_tail(self) -> int:
        """Steps run after the last trial, in which it is consolidated and read out: one, or more
        for long trials, because Brian2 rounds a run's end to a clock tick when it lies within
        1e-4 of the tick (``Clock.epsilon_dt``): the per-trial clock (dt = one trial) would drop its
        final tick, and the last trial's consolidation and counts with it, once a trial has
        10,000 steps or more."""
        return 1 + self.n_trial // 5000

    def run_ms(self, n_trials: int) -> float:
        """n trials plus `n_tail` steps, in which the last trial is consolidated and read out."""
        return (n_trials * self.n_trial + self.n_tail) * self.dt_ms

    def gates(self, n_trials: int, learn: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
        """win (read-out window of valid trials), learn (window of plastic trials) on a grid of
        g steps; consolidate (1 at the start of trial m+1 if trial m was plastic), one per trial."""
        per = np.concatenate([np.zeros(self.n_settle // self.g), np.ones(self.n_window // self.g)])
        win = np.concatenate([np.outer(valid, per).ravel(), [0.0]])
        lrn = np.concatenate([np.outer(learn * valid, per).ravel(), [0.0]])
        cons = np.concatenate([[0.0], learn * valid])
        return {"win": win, "learn": lrn, "consolidate": cons}


def closed_loop_spec(circuit: Circuit, models: SpikeModels, n_trials: int, recordings: list,
                     injected: Iterable[str] = ()) -> dict:
    """Everything that fixes the compiled network (JSON-able): populations, synapse pathways,
    the trial clock, trials per run and monitors."""
    c, plan = circuit, algorithm_plan(circuit)
    layout = circuit_layout(circuit)
    dt = c["spike.dt"]
    src = circuit.source
    clock = TrialClock(dt, _steps(c["spike.t_settle"], dt, "spike.t_settle", src),
                       _steps(c["spike.t_window"], dt, "spike.t_window", src))
    if clock.n_window < 1:
        raise ConfigError(f"{src}: spike.t_window must be at least one step (spike.dt = {dt} ms)")
    pops = {}
    for name, p in layout.populations.items():
        n = models.neuron(p.role, plan.downstream_nonlinearity, c["loss"], c["spike.tier"])
        ext_steps = n_trials * clock.n_trial + 1 if name in injected else 0
        pops[name] = {"brian_name": p.brian_name, "n": p.width, "role": p.role, "ext_steps": ext_steps, **n}
    order = {}  # topological index of each population (only u-driving edges matter, see SPIKE_SCHEDULE)
    K = layout.K
    for k in range(K + 1):
        order[f"h{k}"] = k
    for k in range(K, 0, -1):
        order[f"hbar{k}"] = 2 * K + 1 - k
    syns = {}
    for name, pr in layout.projections.items():
        pre_signed = pops[pr.pre]["signed"]
        sign = "sgn_pre" if pre_signed else "1.0"
        post_b = layout.populations[pr.post].brian_name
        if pr.group == "pred":
            on_pre = f"yhat_post += {sign} / (s_rate_post * tau_r_post)"
            model, plastic, factor = "", False, None
        else:
            target = models.target(pr.group)
            on_pre = f"{target}_post += {sign} * w / (s_rate_post * tau_s_post)"
            plastic = pr.stored
            factor = models.factor(pr.group, c.rule_options) if plastic else None
            if plastic:
                on_pre += f"\ntag += {sign} * learn(t) * plastic * {factor}"
                model = models.synapses["model"]
            else:
                model = models.synapses["fixed_model"]
        syns[name] = {"brian_name": pr.brian_name, "pre": layout.populations[pr.pre].brian_name, "post": post_b,
                      "model": model.strip() + ("\n" if model.strip() else ""), "on_pre": on_pre,
                      "shape": list(pr.shape), "connect": pr.connect, "plastic": plastic, "group": pr.group,
                      "order": -order[pr.pre]}
    if c["loss"] == "cross_entropy":
        err = layout.populations[f"hbar{K}"]
        syns["norm"] = {"brian_name": "syn_norm", "pre": err.brian_name, "post": err.brian_name,
                        "model": models.losses["cross_entropy"]["norm_model"] + "\n", "on_pre": None,
                        "shape": [err.width, err.width], "connect": "dense", "plastic": False, "group": "norm",
                        "order": 0}
    recs = [dataclasses.asdict(r) for r in recordings]
    params = {k: repr(v) for k, v in models.parameters(c["spike.tier"]).items()} if c["spike.tier"] != "poisson" else {}
    return {"kind": "spike", "tier": c["spike.tier"], "parameters": params, "method": models.method, "dt_ms": dt,
            "clock": dataclasses.asdict(clock), "n_trials": int(n_trials), "delay_ms": float(c["spike.delay"]),
            "populations": pops, "synapses": syns, "recordings": recs,
            "consolidate": models.synapses["consolidate"],
            "widths": {"x": layout.populations["h0"].width, "y": layout.populations[f"h{K}"].width},
            "seed_env": SEED_ENV}


def _seed_code() -> str:
    from brian2 import prefs

    n = prefs.devices.cpp_standalone.openmp_threads or 1
    return ("{ const char* _salspike_seed = std::getenv(\"%s\");\n"
            "  if (_salspike_seed) { unsigned long _v = std::strtoul(_salspike_seed, 0, 10);\n"
            "    for (int _i=0; _i<%d; _i++) brian::_random_generators[_i].seed(_v + _i); } }" % (SEED_ENV, n))


def _assemble(spec: dict, template: Mapping[str, np.ndarray], parameters: Mapping[str, Any]) -> NetworkAssembly:
    """Create the Brian2 objects of a closed-loop spec (under the selected device); ``parameters``:
    the tier's constants (Brian2 quantities)."""
    import brian2

    dt = spec["dt_ms"]
    clock = TrialClock(**spec["clock"])
    n = spec["n_trials"]
    T = clock.t_trial_ms
    asm = NetworkAssembly("spike", dt)

    def tmpl(key, shape):
        v = template.get(key)
        return np.zeros(shape) if v is None else np.asarray(v, dtype=np.float64).reshape(shape)

    n_grid = n * clock.n_trial // clock.g + 1
    shared = {"x_in": asm.timed_array("x_in", tmpl("x_in.values", (n, spec["widths"]["x"])), T),
              "y_in": asm.timed_array("y_in", tmpl("y_in.values", (n, spec["widths"]["y"])), T),
              "win": asm.timed_array("win", tmpl("win.values", (n_grid,)), clock.g * dt),
              "learn": asm.timed_array("learn", tmpl("learn.values", (n_grid,)), clock.g * dt),
              "consolidate": asm.timed_array("consolidate", tmpl("consolidate.values", (n + 1,)), T)}
    trial_clock = brian2.Clock(dt=T * brian2.ms, name="spike_trial_clock")
    groups = {}
    for name, p in spec["populations"].items():
        stim = asm.timed_array(f"stim_{name}", tmpl(f"stim_{name}.values", (n, p["n"])), T)
        ext = asm.timed_array(f"ext_{name}", tmpl(f"ext_{name}.values", (max(p["ext_steps"], 1), p["n"])), dt)
        extra = {"refractory": p["refractory"]} if p["refractory"] else {}
        g = brian2.NeuronGroup(p["n"], p["equations"], threshold=p["threshold"], reset=p["reset"],
                               method=p["method"] or spec["method"], name=p["brian_name"],
                               namespace={**shared, **parameters, "stim": stim, "ext": ext}, clock=asm.clock,
                               **extra)
        if "E_L" in parameters and "v" in g.variables:
            g.v = parameters["E_L"]
        asm.neurons[p["brian_name"]] = g
        groups[p["brian_name"]] = g
        # per-trial spike counts of the window: sampled at each trial's end, then cleared
        # sampled and cleared at the START of each trial's first step: the count holds exactly the
        # steps of the trial before (also with t_settle = 0)
        asm.monitors[f"count_{name}"] = brian2.StateMonitor(g, ["n_on", "n_off"], record=True, clock=trial_clock,
                                                            when="start", order=0, name=f"count_{name}")
        g.run_regularly("n_on = 0\nn_off = 0", dt=T * brian2.ms, when="start", order=2,
                        name=f"{p['brian_name']}_clear")
    delay = spec["delay_ms"] * brian2.ms
    for name, s in spec["synapses"].items():
        kwargs = {}
        if s["on_pre"]:
            kwargs["on_pre"] = s["on_pre"]
            if spec["delay_ms"] > 0:
                kwargs["delay"] = delay
        syn = brian2.Synapses(groups[s["pre"]], groups[s["post"]], s["model"], name=s["brian_name"],
                              method=spec["method"], namespace=dict(shared), clock=asm.clock, **kwargs)
        n_post, n_pre = s["shape"]
        i, j = dense_indices(n_post, n_pre) if s["connect"] != "one_to_one" else one_to_one_indices(n_post)
        syn.connect(i=i, j=j)
        if s["on_pre"]:
            syn.pre.order = s["order"]
        if s["plastic"]:
            syn.run_regularly(spec["consolidate"], dt=T * brian2.ms, when="start", order=1,
                              name=f"{s['brian_name']}_consolidate")
        asm.synapses[s["brian_name"]] = syn
    for k, r in enumerate(spec["recordings"]):
        target, var = r["target"], r["variable"]
        if target in spec["populations"]:
            obj = groups[spec["populations"][target]["brian_name"]]
        else:
            obj = asm.synapses[spec["synapses"][target]["brian_name"]]
        if var == "spikes":
            signed = spec["populations"][target]["signed"]
            # after the resets: a signed pair's sgn is set there (SPIKE_SCHEDULE)
            m = brian2.SpikeMonitor(obj, variables=["sgn"] if signed else [], when="resets", order=1,
                                    name=f"rec_{k}")
        elif var == "rate":
            m = brian2.PopulationRateMonitor(obj, name=f"rec_{k}")
        else:
            record = True if r["indices"] is None else list(r["indices"])
            m = brian2.StateMonitor(obj, var, record=record, clock=asm.clock_for(r["dt_ms"]), when="end", order=3,
                                    name=f"rec_{k}")
        asm.monitors[f"rec_{k}"] = m
    if devices.current_device() == "cpp_standalone":
        brian2.get_device().insert_code("main", _seed_code())
    net = brian2.Network(*asm.neurons.values(), *asm.synapses.values(), *asm.monitors.values(),
                         name="spike_network")
    net.schedule = SPIKE_SCHEDULE
    if type(brian2.get_device()).__name__ == "CUDAStandaloneDevice":  # see NetworkAssembly.network
        brian2.defaultclock.dt = dt * brian2.ms
        net.add(brian2.NeuronGroup(1, "", clock=brian2.defaultclock, name="spike_defaultclock_anchor"))
    asm._net = net
    return asm


class SpikeNetwork(BrianWeights):
    """The circuit as a closed-loop Brian2 spiking network (tier ``poisson``: LNP neurons).

    Parameters
    ----------
    circuit
        A resolved `Circuit`.  Spike parameters (ms unless stated): ``spike.rate_scale`` (s,
        Hz per activity unit), ``spike.tau_s``, ``spike.tau_readout``, ``spike.tau_trace``,
        ``spike.t_settle``, ``spike.t_window``, ``spike.delay``, ``spike.dt``.
    weights
        Initial weights in the cross-level layout (default `init_weights(circuit)`).
    device
        ``runtime``, ``cpp_standalone`` or ``cuda_standalone`` (compile-only without a GPU).
    seed
        Seed of the spike trains (runtime: ``brian2.seed``; cpp_standalone: read by the binary
        from ``$SALSPIKE_SEED``, so new seeds need no recompile).  Each run uses ``seed + run
        index``; None draws nothing (Brian2's own random seed).
    trials_per_run
        Trials compiled into one standalone run (longer calls are split, the last run padded
        with silent non-plastic trials).  Default: the first call's count.
    models, build_dir, compile_jobs, cuda_options, codegen_target, profile
        As for `salspike.brian.rate.RateNetwork`.
    """

    def __init__(self, circuit: Circuit, weights: Mapping[str, np.ndarray] | None = None, *,
                 device: str = "runtime", build_dir: str | Path | None = None, seed: int | None = 0,
                 trials_per_run: int | None = None, models: str | Path | None = None,
                 compile_jobs: int | None = None, cuda_options: Mapping[str, Any] | None = None,
                 codegen_target: str | None = "numpy", profile: bool = False):
        if not circuit.resolved:
            raise ConfigError(f"{circuit.source}: input/output widths are 'auto'; resolve them "
                              "(Circuit.with_io_widths) before building the spike network")
        self.models = load_spike_models(models)
        self.device, self.build_dir = device, build_dir
        self.compile_jobs, self.cuda_options = compile_jobs, cuda_options
        self.codegen_target, self.profile = codegen_target, bool(profile)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self._runs = 0
        self._t_elapsed = 0.0  # ms simulated by earlier runs: recordings carry one continuous clock
        if trials_per_run is not None and (not isinstance(trials_per_run, int) or trials_per_run < 1):
            raise ConfigError(f"trials_per_run must be a positive integer, got {trials_per_run!r}")
        self.trials_per_run = trials_per_run
        self._set_circuit(circuit)
        self.hooks = Hooks(self.layout)
        self.set_weights(init_weights(circuit) if weights is None else weights)
        self.recordings: dict[str, dict[str, np.ndarray]] = {}
        self.injections: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self.last_runner: BrianRunner | None = None

    def _set_circuit(self, circuit: Circuit) -> None:
        plan = algorithm_plan(circuit)
        src = circuit.source
        if circuit["spike.tier"] not in ("poisson", *self.models.tiers):
            raise ConfigError(f"{src}: spike.tier = {circuit['spike.tier']!r} has no neuron model in "
                              f"{self.models.source}; tiers: poisson, {', '.join(self.models.tiers)}")
        if plan.wbar_mode in ("tied", "mirror"):
            raise ConfigError(f"{src}: algorithm {circuit['algorithm']!r} needs weight transport or a mirror phase, "
                              "which no local spiking synapse expresses; the spike level runs sal, fa and kp")
        if circuit["upstream_nonlinearity"] != "relu":
            raise ConfigError(f"{src}: the spike level's hidden neurons rectify (upstream_nonlinearity = 'relu'); "
                              f"got {circuit['upstream_nonlinearity']!r}")
        if circuit["modulation_alpha"] != 0.0:
            raise ConfigError(f"{src}: short-term modulation (modulation_alpha != 0) lets apical input drive the "
                              "soma, which closes a loop the spike level does not run; set modulation_alpha = 0")
        dt = circuit["spike.dt"]
        if circuit["spike.delay"] > 0:
            _steps(circuit["spike.delay"], dt, "spike.delay", src)
        rmax = circuit["spike.rate_scale"]
        if rmax * dt * 1e-3 > 0.1:
            raise ConfigError(f"{src}: spike.rate_scale x spike.dt = {rmax * dt * 1e-3:.2f} spikes per step per unit: "
                              "Bernoulli spiking saturates; lower spike.dt or spike.rate_scale")
        self.circuit, self.plan = circuit, plan
        self.layout = circuit_layout(circuit)
        closed_loop_spec(circuit, self.models, 1, [])  # checks the trial clock

    # -- hooks and recordings ---------------------------------------------------------
    def record(self, target: str, variable: str, dt: float | None = None,
               indices: Iterable[int] | None = None) -> str:
        """Record during the next runs: ``variable = "spikes"`` (a population's spike trains;
        signed pairs with the sign of each spike), ``"rate"`` (population rate), or a state
        variable (``u``, ``I_ff``, ``apical``, ``w`` of a synapse group...) every ``dt`` ms.
        Results in ``self.recordings[key]``; changes the compiled network."""
        if variable in ("spikes", "rate") and target not in self.layout.populations:
            raise ConfigError(f"record({target!r}, {variable!r}): {variable} is recorded from a population "
                              f"({', '.join(self.layout.populations)})")
        return self.hooks.record(target, variable, dt, indices)

    def inject(self, population: str, neurons: Iterable[int], times_ms: Iterable[float], sign: float = 1.0) -> None:
        """Force spikes of ``neurons`` at ``times_ms`` (ms from the start of the next run, one per
        (neuron, time) pair) in the next runs; a signed pair's forced spike carries ``sign``
        (+1 ON, -1 OFF).  The spikes act like any other (transmission, tags, counts).  Changes
        the compiled network (a per-step input of the population)."""
        pop = self.layout.population(population)
        idx = np.asarray(list(neurons), dtype=int)
        t = np.asarray(list(times_ms), dtype=float)
        if idx.shape != t.shape:
            raise ShapeError(f"inject({population!r}): {idx.size} neurons but {t.size} times (one time per neuron)")
        if idx.size and (idx.min() < 0 or idx.max() >= pop.width):
            raise ShapeError(f"inject({population!r}): neuron indices must be in 0..{pop.width - 1}")
        if sign not in (1.0, -1.0, 1, -1):
            raise ConfigError(f"inject({population!r}): sign must be +1 (ON) or -1 (OFF), got {sign!r}")
        if np.any(t < 0):
            raise ConfigError(f"inject({population!r}): times must be >= 0 ms")
        self.injections.setdefault(population, []).append((idx, t, np.full(idx.shape, float(sign))))

    def clear_injections(self) -> None:
        self.injections = {}

    def _ext_values(self, name: str, n_trials: int) -> np.ndarray:
        dt = self.circuit["spike.dt"]
        steps = n_trials * self.clock.n_trial + 1
        out = np.zeros((steps, self.layout.populations[name].width))
        for idx, t, sgn in self.injections.get(name, []):
            k = np.round(t / dt).astype(int)
            keep = k < steps
            out[k[keep], idx[keep]] = sgn[keep]
        return out

    # -- building ---------------------------------------------------------------------
    @property
    def clock(self) -> TrialClock:
        c = self.circuit
        return TrialClock(c["spike.dt"], _steps(c["spike.t_settle"], c["spike.dt"], "spike.t_settle", ""),
                          _steps(c["spike.t_window"], c["spike.dt"], "spike.t_window", ""))

    def spec(self, n_trials: int) -> dict:
        return closed_loop_spec(self.circuit, self.models, n_trials, self.hooks.sorted_recordings(),
                                sorted(self.injections))

    def runner(self, n_trials: int) -> BrianRunner:
        spec = self.spec(n_trials)
        params = self.models.parameters(self.circuit["spike.tier"]) if self.circuit["spike.tier"] != "poisson" else {}
        runner = BrianRunner(self.device, lambda template, spec=spec: _assemble(spec, template, params), spec,
                             kind="spike", build_dir=self.build_dir, compile_jobs=self.compile_jobs,
                             cuda_options=self.cuda_options, codegen_target=self.codegen_target,
                             profile=self.profile)
        return shared_runner(runner)

    def compile(self, n_trials: int | None = None, *, compile: bool = True) -> BrianRunner:
        """Standalone: generate and (compile=True) compile the project for ``n_trials`` trials per
        run without running it."""
        n = n_trials or self.trials_per_run or 1
        if self.trials_per_run is None and self.device != "runtime":
            self.trials_per_run = n
        runner = self.runner(n)
        runner.compile(self._template(n), self.clock.run_ms(n), compile=compile)
        self.last_runner = runner
        return runner

    def _template(self, n: int) -> dict:
        z = self.clock.gates(n, np.zeros(n), np.zeros(n))
        out = {"x_in.values": np.zeros((n, self.circuit.widths[0])),
               "y_in.values": np.zeros((n, self.circuit.widths[-1]))}
        out.update({f"{k}.values": v for k, v in z.items()})
        for name, p in self.layout.populations.items():
            out[f"stim_{name}.values"] = np.zeros((n, p.width))
            if name in self.injections:
                out[f"ext_{name}.values"] = np.zeros((n * self.clock.n_trial + 1, p.width))
        return out

    def _values(self, x: np.ndarray, y: np.ndarray, valid: np.ndarray, learn: bool, stim: dict) -> dict:
        """Every run-time value (handle key -> plain value in Brian2 base units)."""
        c, plan = self.circuit, self.plan
        n = x.shape[0]
        ms = 1e-3
        s = c["spike.rate_scale"]
        vals: dict[str, Any] = {"x_in.values": x, "y_in.values": y}
        gates = self.clock.gates(n, np.full(n, 1.0 if learn else 0.0), valid)
        vals.update({f"{k}.values": v for k, v in gates.items()})
        for name, p in self.layout.populations.items():
            b = p.brian_name
            vals[f"stim_{name}.values"] = stim[name]
            if name in self.injections:
                vals[f"ext_{name}.values"] = self._ext_values(name, n)
            on, value = self.hooks.clamp_values(name)
            vals[f"{b}.clamp_on"], vals[f"{b}.clamp_value"] = on, value
            vals[f"{b}.s_rate"] = s
            if p.role in ("upstream", "output"):
                apical = self.hooks.apical_silenced.get(name)
                vals[f"{b}.apical_on"] = 1.0 if apical is None else (~apical).astype(float)
            if p.role in ("upstream", "output", "downstream"):
                vals[f"{b}.tau_s"] = c["spike.tau_s"] * ms
            if p.role != "input":
                vals[f"{b}.tau_tr"] = c["spike.tau_trace"] * ms
            if p.role == "error":
                vals[f"{b}.tau_r"] = c["spike.tau_readout"] * ms
        T = self.clock.t_window_ms * ms
        for name, pr in self.layout.projections.items():
            if pr.group == "pred":
                continue
            b = pr.brian_name
            i, j = connection_indices(pr)
            base = self.weights[name] if pr.stored else np.eye(*pr.shape)
            vals[f"{b}.w"] = matrix_to_w(self.hooks.effective(name, base), i, j)
            if pr.stored:
                mask = self.hooks.plasticity_mask(name)
                vals[f"{b}.eta"] = plan.eta[pr.group]
                vals[f"{b}.c_decay"] = plan.decay[pr.group]
                vals[f"{b}.T_win"] = T
                vals[f"{b}.s_syn"] = s
                if not plan.learns(pr.group):
                    vals[f"{b}.plastic"] = 0.0
                else:
                    vals[f"{b}.plastic"] = 1.0 if mask is None else matrix_to_w(mask, i, j)
        return vals

    # -- running ------------------------------------------------------------------------
    def _check_inputs(self, x: np.ndarray) -> None:
        if np.any(x < 0):
            raise ShapeError(f"spike level: inputs are firing rates and must be >= 0 (min {float(x.min()):g}); "
                             "rescale the data to [0, 1] (digits and MNIST loaders do)")

    def run_trials(self, x: np.ndarray, y: np.ndarray, *, learn: bool = True
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Run one trial per row of ``x`` (n, d_0) with targets ``y`` (n, d_K): settle, then a
        window in which the synapses learn (``learn``) and the spikes are counted, consolidation
        at each trial's end (online learning, in order).  Returns ``(weights, activities)``;
        activities ``h0..hK``, ``hbar1..hbarK`` are (n, width) spike-count rates of the window
        in activity units, ``(n_ON - n_OFF) / (s T_window)``, measured before the trial's update."""
        x, y = self._trial_arrays(x, y)
        self._check_inputs(x)
        self.apply_lesions()
        n = x.shape[0]
        stim_all = {name: self.hooks.stimulus(name, n) for name in self.layout.populations}
        chunk = self._run_size(n)
        if self.injections and n > chunk:
            raise ConfigError(f"injected spikes are timed from the start of one run, but {n} trials run in runs of "
                              f"{chunk}; pass trials_per_run >= {n}")
        acts: dict[str, list] = {}
        recs: dict[str, dict[str, list]] = {}
        t_offset = self._t_elapsed
        for start, stop, pad in self._run_slices(n, chunk):
            nv = stop - start
            m = nv + pad

            def padded(a):
                return np.concatenate([a[start:stop], np.zeros((pad, a.shape[1]))]) if pad else a[start:stop]

            valid = (np.arange(m) < nv).astype(float)
            values = self._values(padded(x), padded(y), valid, learn, {k: padded(v) for k, v in stim_all.items()})
            runner = self.runner(m)
            self.last_runner = runner
            out = self._run(runner, values, m)
            if learn:
                for k, w in out["weights"].items():
                    silent = self.hooks.silent_mask(k)
                    if silent is not None:
                        w[silent] = self.weights[k][silent]
                    self.weights[k] = w
            for k, a in out["activities"].items():
                acts.setdefault(k, []).append(a[:nv])
            t_valid = nv * self.clock.t_trial_ms
            for key, r in out["recordings"].items():
                keep = r["t"] < t_valid - 1e-9
                recs.setdefault(key, {})
                for field, v in r.items():
                    v = np.asarray(v)
                    v = v[keep] if v.shape[:1] == keep.shape else v
                    if field == "t":
                        v = v + t_offset
                    recs[key].setdefault(field, []).append(v)
            t_offset += t_valid
        self._t_elapsed = t_offset
        for name, w in self.weights.items():
            if not np.all(np.isfinite(w)):
                raise DivergenceError(f"spike network diverged: {name} has NaN/inf after the run; lower the "
                                      "learning rates (eta.*)")
        self.recordings = {k: {f: np.concatenate(v) for f, v in r.items()} for k, r in recs.items()}
        activities = {k: np.concatenate(v) for k, v in acts.items()}
        order = [f"h{k}" for k in range(self.layout.K + 1)] + [f"hbar{k}" for k in range(1, self.layout.K + 1)]
        return self.get_weights(), {k: activities[k] for k in order}

    def readout(self, x: np.ndarray, y: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Activities of every population measured from spikes in each trial's window, with no
        plasticity (targets drive only the error module; zeros when not given)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.zeros((x.shape[0] if x.ndim == 2 else 1, self.circuit.widths[-1])) if y is None else y
        return self.run_trials(x, y, learn=False)[1]

    def _run(self, runner: BrianRunner, values: dict, m: int) -> dict:
        duration = self.clock.run_ms(m)
        seed = None if self.seed is None else self.seed + self._runs
        self._runs += 1
        collect = self._collect
        if not runner.standalone:
            import brian2

            if seed is not None:
                brian2.seed(seed)
            return runner.run(values, duration, collect)
        old = os.environ.get(SEED_ENV)
        try:
            if seed is not None:
                os.environ[SEED_ENV] = str(seed)
            return runner.run(values, duration, collect, template=self._template(m))
        finally:
            if old is None:
                os.environ.pop(SEED_ENV, None)
            else:
                os.environ[SEED_ENV] = old

    def _collect(self, asm: NetworkAssembly) -> dict:
        s = self.circuit["spike.rate_scale"]
        T = self.clock.t_window_ms * 1e-3
        weights = {}
        for name, pr in self.layout.projections.items():
            if pr.stored:
                syn = asm.synapses[pr.brian_name]
                weights[name] = w_to_matrix(np.asarray(syn.w[:]), np.asarray(syn.i[:]), np.asarray(syn.j[:]), pr.shape)
        activities = {}
        for name in self.layout.populations:
            mon = asm.monitors[f"count_{name}"]
            on, off = np.asarray(mon.n_on).T, np.asarray(mon.n_off).T
            activities[name] = (on[1:] - off[1:]) / (s * T)  # sample m + 1 closes trial m
        recordings = {}
        for k, r in enumerate(self.hooks.sorted_recordings()):
            mon = asm.monitors[f"rec_{k}"]
            if r.variable == "spikes":
                out = {"t": np.asarray(mon.t_) * 1e3, "i": np.asarray(mon.i[:])}
                if "sgn" in mon.record_variables:
                    out["sign"] = np.asarray(mon.sgn[:])
            elif r.variable == "rate":
                out = {"t": np.asarray(mon.t_) * 1e3, "values": np.asarray(mon.rate_)}
            else:
                vals = np.asarray(getattr(mon, r.variable)).T
                if r.target in self.layout.projections and r.variable == "w" and r.indices is None:
                    pr = self.layout.projections[r.target]
                    syn = asm.synapses[pr.brian_name]
                    i, j = np.asarray(syn.i[:]), np.asarray(syn.j[:])
                    vals = (np.stack([w_to_matrix(v, i, j, pr.shape) for v in vals]) if len(vals)
                            else np.zeros((0, *pr.shape)))
                out = {"t": np.asarray(mon.t_) * 1e3, "values": vals}
            recordings[r.key] = out
        return {"weights": weights, "activities": activities, "recordings": recordings}

    def close(self) -> None:
        self.last_runner = None
