"""The SAL circuit as a Brian2 rate network whose rate limit equals the matrix algorithm.

Neuron and synapse equations are data: ``models/rate_equations.toml`` (`load_rate_models`
validates it).  `RateNetwork` assembles them per layer with `salspike.brian.common` and runs N
trials in ONE Brian2 ``run()``: inputs ``x``, targets ``y`` and the phase gates are TimedArrays,
so no Python runs between trials.  Each trial is a forward settle (``rate.t_forward``), a
feedback settle (``rate.t_feedback``) and a plasticity window (``rate.t_plasticity``), with one
update per trial from the settled state at the end of the window (``rate.plasticity =
"one_shot"``; the plasticity ODEs run on a clock of period t_trial, so a step costs only the
summed inputs and the neurons) or the plasticity ODEs over the window (``"continuous"``, every
step, the biological reading).

Upstream neurons integrate a potential, ``tau_up du/dt = -u + I_ff``, and fire ``h = D_u(u)``
(same fixed point as ``tau_up dh/dt = -h + D_u(I_ff)``, but an inactive ReLU unit reaches
``h = 0`` exactly, which the gate ``D_d = 1[V h > 0]`` needs when V = I); downstream neurons
``tau_down dhbar/dt = -hbar + gate_fb * D_d * I_fb``; the error module
``tau_down dhbar/dt = -hbar + gate_fb * (y - h^K)`` (or ``y - softmax(h^K)``).

Populations (cross-level names): h0 (input), h1..h{K-1} (upstream hidden),
hK (output), hbar1..hbar{K-1} (downstream hidden), hbarK (the error module, -dF/dy_hat).
Synapse groups and the summed variable each writes on its target:
W{k}: h{k} -> h{k+1}, I_ff;   Vbar{k}: hbar{k+1} -> h{k+1}, I_apical (Vbar{K-1} = I fixed);
Wbar{k}: hbar{k+1} -> hbar{k}, I_fb;   V{k}: h{k} -> hbar{k}, I_lat;   pred: hK -> hbarK, I_pred.

Rate limit: with time constants much shorter than the phases, the activities recorded at the
end of the feedback phase are the matrix level's `MatrixNetwork.activities` and one_shot
weights equal `MatrixNetwork.step(x, y, online=True)` (see docs/rate_network.md for how far from
the limit a given time constant is).

Limitations (ConfigError): algorithm ``bp`` (Wbar tied to W^T: weight transport, no local
rule) and ``wm`` (weight mirroring needs a separate noise-driven mirror phase) are not
expressed at rate level.  Cross-entropy is supported (softmax through a summed partition
function, without max-subtraction: |y_hat| must stay below ~700).  Short-term modulation
(``modulation_alpha``) is not part of the rate model (as it is not part of the matrix step).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..circuit import Circuit, Hooks, Layout, algorithm_plan, circuit_layout, init_weights
from ..errors import ConfigError, DivergenceError, ShapeError
from .assembly import NetworkAssembly, connection_indices, dense_indices, matrix_to_w, one_to_one_indices, w_to_matrix
from .equations import MODEL_OF_ROLE, RateModels, load_rate_models
from .runner import BrianRunner, shared_runner
from .schedule import TrialSchedule
from .weights import BrianWeights

__all__ = ["RateNetwork"]

# --------------------------------------------------------------------------- network spec


def _rate_spec(circuit: Circuit, models: RateModels, layout: Layout, schedule: TrialSchedule,
               n_trials: int, recordings: list) -> dict:
    """Everything that fixes the compiled network (JSON-able): object names, sizes, model
    strings, connectivity, schedule, trials per run and monitors."""
    plan = algorithm_plan(circuit)
    opts = circuit.rule_options
    pops = {}
    for name, p in layout.populations.items():
        if p.role == "input":
            eqs = models.population_equations("input")
        elif p.role == "upstream":
            eqs = models.population_equations("upstream", circuit["upstream_nonlinearity"])
        elif p.role == "output":
            eqs = models.population_equations("upstream", "identity")
        elif p.role == "downstream":
            eqs = models.population_equations("downstream", plan.downstream_nonlinearity)
        else:
            eqs = models.population_equations("error", loss=circuit["loss"])
        act = models.populations[MODEL_OF_ROLE[p.role]]["activity"]
        pops[name] = {"brian_name": p.brian_name, "n": p.width, "equations": eqs, "activity": act}
    syns = {}
    for name, pr in layout.projections.items():
        if pr.group == "pred":
            model = models.losses[circuit["loss"]]["pred_model"].strip() + "\n"
            plastic = False
        elif pr.stored:
            model = models.synapse_model(pr.group, True, opts)
            plastic = True
        else:
            model = models.synapse_model(pr.group, False)
            plastic = False
        syns[name] = {"brian_name": pr.brian_name, "pre": layout.populations[pr.pre].brian_name,
                      "post": layout.populations[pr.post].brian_name, "model": model, "shape": list(pr.shape),
                      "connect": pr.connect, "plastic": plastic, "has_w": pr.group != "pred"}
    recs = [dataclasses.asdict(r) for r in recordings]
    mode = circuit["rate.plasticity"]
    return {"kind": "rate", "method": models.method, "dt_ms": schedule.dt_ms,
            "steps": [schedule.n_forward, schedule.n_feedback, schedule.n_plasticity], "n_trials": int(n_trials),
            "plasticity_clock_ms": schedule.plasticity_clock_ms(mode),
            "populations": pops, "synapses": syns, "recordings": recs,
            "widths": {"x": layout.populations["h0"].width, "y": layout.populations[f"h{layout.K}"].width}}


def _assemble(spec: dict, template: Mapping[str, np.ndarray]) -> NetworkAssembly:
    """Create the Brian2 objects of a rate network spec (under the selected device)."""
    dt = spec["dt_ms"]
    S = sum(spec["steps"])
    T = S * dt
    n = spec["n_trials"]
    n_steps = n * S + 1
    p_clock = spec["plasticity_clock_ms"]
    n_p = n + 1 if p_clock != dt else n_steps
    asm = NetworkAssembly("rate", dt)

    def tmpl(key, shape):
        v = template.get(key)
        return np.zeros(shape) if v is None else np.asarray(v, dtype=np.float64).reshape(shape)

    shared = {"x_in": asm.timed_array("x_in", tmpl("x_in.values", (n, spec["widths"]["x"])), T),
              "y_in": asm.timed_array("y_in", tmpl("y_in.values", (n, spec["widths"]["y"])), T)}
    for g in ("gate_fb", "gate_rec"):
        shared[g] = asm.timed_array(g, tmpl(f"{g}.values", (n_steps,)), dt)
    shared["gate_p"] = asm.timed_array("gate_p", tmpl("gate_p.values", (n_p,)), p_clock)
    groups = {}
    for name, p in spec["populations"].items():
        stim = asm.timed_array(f"stim_{name}", tmpl(f"stim_{name}.values", (n, p["n"])), T)
        groups[p["brian_name"]] = asm.neuron_group(p["brian_name"], p["n"], p["equations"],
                                                   {**shared, "stim": stim}, spec["method"])
    for name, s in spec["synapses"].items():
        n_post, n_pre = s["shape"]
        i, j = dense_indices(n_post, n_pre) if s["connect"] != "one_to_one" else one_to_one_indices(n_post)
        asm.synapse_group(s["brian_name"], groups[s["pre"]], groups[s["post"]], s["model"], i, j,
                          shared, spec["method"], clock_ms=p_clock if s["plastic"] else None)
    for name, p in spec["populations"].items():
        asm.state_monitor(f"snap_{name}", groups[p["brian_name"]], f"{p['activity']}_rec", T, record=True)
    for k, r in enumerate(spec["recordings"]):
        target = r["target"]
        obj = (groups.get(spec["populations"][target]["brian_name"]) if target in spec["populations"]
               else asm.synapses[spec["synapses"][target]["brian_name"]])
        record = True if r["indices"] is None else list(r["indices"])
        asm.state_monitor(f"rec_{k}", obj, r["variable"], r["dt_ms"], record=record)
    asm.network()
    return asm


# --------------------------------------------------------------------------- the network


class RateNetwork(BrianWeights):
    """The circuit as a Brian2 rate network.

    Parameters
    ----------
    circuit
        A resolved `Circuit` (input/output widths known).  Rate parameters: ``rate.tau_up``,
        ``rate.tau_down``, ``rate.dt``, ``rate.t_forward``, ``rate.t_feedback``,
        ``rate.t_plasticity`` (ms), ``rate.plasticity`` (one_shot | continuous).
    weights
        Initial weights in the cross-level layout (``W{k}``: d_{k+1} x d_k, ...); default
        `init_weights(circuit)` (the matrix level's initialisation).
    device
        ``runtime``, ``cpp_standalone`` or ``cuda_standalone`` (compile-only without a GPU).
    build_dir
        Standalone project folder; default ``.salspike_cache/brian/rate-<device>-<hash>``
        (``$SALSPIKE_CACHE_DIR/brian/...`` when set), the hash covering circuit shape,
        equations, schedule, trials per run, recordings and device.
    trials_per_run
        Trials compiled into one standalone run (a longer call is split into runs of this
        size, the last one padded with non-plastic trials).  Default: the first call's count.
        The runtime device runs each call in one run unless this is set.
    models
        Path of a rate-equations TOML file (default models/rate_equations.toml).
    compile_jobs, cuda_options
        Passed to `salspike.brian.devices.select_device` (``make -j``; brian2cuda settings).
    codegen_target
        Brian2 code generation target of the runtime device (``numpy``: no compile step;
        ``cython``: faster per step after a one-off compile; None: Brian2's preference).
    profile
        Collect Brian2's per-code-object timings (``last_runner.profiling_info()``).
    """

    def __init__(self, circuit: Circuit, weights: Mapping[str, np.ndarray] | None = None, *,
                 device: str = "runtime", build_dir: str | Path | None = None,
                 trials_per_run: int | None = None, models: str | Path | None = None,
                 compile_jobs: int | None = None, cuda_options: Mapping[str, Any] | None = None,
                 codegen_target: str | None = "numpy", profile: bool = False):
        if not circuit.resolved:
            raise ConfigError(f"{circuit.source}: input/output widths are 'auto'; resolve them "
                              "(Circuit.with_io_widths) before building the rate network")
        self.models = load_rate_models(models)
        self.device = device
        self.build_dir = build_dir
        self.compile_jobs = compile_jobs
        self.cuda_options = cuda_options
        self.codegen_target = codegen_target
        self.profile = bool(profile)
        if trials_per_run is not None and (not isinstance(trials_per_run, int) or trials_per_run < 1):
            raise ConfigError(f"trials_per_run must be a positive integer, got {trials_per_run!r}")
        self.trials_per_run = trials_per_run
        self._set_circuit(circuit)
        self.hooks = Hooks(self.layout)
        self.set_weights(init_weights(circuit) if weights is None else weights)
        self.recordings: dict[str, dict[str, np.ndarray]] = {}
        self.last_runner: BrianRunner | None = None

    # -- circuit and parameters -------------------------------------------------
    def _set_circuit(self, circuit: Circuit) -> None:
        plan = algorithm_plan(circuit)
        if plan.wbar_mode == "tied":
            raise ConfigError(f"{circuit.source}: algorithm 'bp' ties Wbar to W^T (weight transport), which no "
                              "local synapse rule expresses; the rate level runs sal, fa and kp. Use the matrix "
                              "level for bp.")
        if plan.wbar_mode == "mirror":
            raise ConfigError(f"{circuit.source}: algorithm 'wm' (weight mirroring) needs a separate noise-driven "
                              "mirror phase that the rate level does not implement; use the matrix level, or 'kp'.")
        if circuit["spike.matched_transfer"] != "relu":
            raise ConfigError(f"{circuit.source}: spike.matched_transfer = {circuit['spike.matched_transfer']!r} "
                              "(the spike level's rate model) is implemented at the matrix level only; run it "
                              "with --level matrix, or set spike.matched_transfer = \"relu\"")
        if circuit["loss"] not in self.models.losses:
            raise ConfigError(f"{circuit.source}: loss {circuit['loss']!r} has no error-module model in "
                              f"{self.models.source} (have {sorted(self.models.losses)})")
        self.schedule = TrialSchedule.from_circuit(circuit)
        self.schedule.plasticity_time_ms(circuit["rate.plasticity"])
        self.circuit = circuit
        self.plan = plan
        self.options = circuit.rule_options
        self.layout = circuit_layout(circuit, self.models.losses[circuit["loss"]]["pred_connect"])

    def set_circuit(self, circuit: Circuit) -> None:
        """New run-time parameters (learning rates, gamma, time constants, plasticity mode...).
        A circuit of the same structure reuses the compiled network; widths, nonlinearities,
        loss, rule variants, dt or phase lengths select (and if needed compile) another one."""
        old = self.layout
        self._set_circuit(circuit)
        if {k: (p.width) for k, p in old.populations.items()} != {k: p.width for k, p in self.layout.populations.items()}:
            raise ShapeError("set_circuit: the widths differ; create a new RateNetwork")
        self.hooks.layout = self.layout

    def record(self, target: str, variable: str, dt: float | None = None,
               indices: Iterable[int] | None = None) -> str:
        """Record ``variable`` of a population or synapse group every ``dt`` ms (default: every
        step) during the next runs; results in ``self.recordings[key]`` as ``{"t": ms,
        "values": (n_samples, n_recorded)}`` (``w`` of a dense group with all synapses:
        (n_samples, n_post, n_pre)).  Changes the compiled network."""
        return self.hooks.record(target, variable, dt, indices)

    # -- building -----------------------------------------------------------------
    def _spec(self, n_trials: int) -> dict:
        return _rate_spec(self.circuit, self.models, self.layout, self.schedule, n_trials,
                          self.hooks.sorted_recordings())

    def runner(self, n_trials: int) -> BrianRunner:
        spec = self._spec(n_trials)
        runner = BrianRunner(self.device, lambda template, spec=spec: _assemble(spec, template), spec,
                             kind="rate", build_dir=self.build_dir, compile_jobs=self.compile_jobs,
                             cuda_options=self.cuda_options, codegen_target=self.codegen_target,
                             profile=self.profile)
        return shared_runner(runner)

    def compile(self, n_trials: int | None = None, *, compile: bool = True) -> BrianRunner:
        """Standalone: generate and (compile=True) compile the project for ``n_trials`` trials
        per run without running it (e.g. cuda_standalone on a machine without a GPU)."""
        n = n_trials or self.trials_per_run or 1
        if self.trials_per_run is None and self.device != "runtime":
            self.trials_per_run = n
        runner = self.runner(n)
        runner.compile(self._template(n), self.schedule.run_duration_ms(n), compile=compile)
        self.last_runner = runner
        return runner

    def _template(self, n: int) -> dict:
        out = {"x_in.values": np.zeros((n, self.circuit.widths[0])),
               "y_in.values": np.zeros((n, self.circuit.widths[-1]))}
        for g, arr in self.schedule.gates(n, self.circuit["rate.plasticity"]).items():
            out[f"{g}.values"] = np.zeros_like(arr)
        for name, p in self.layout.populations.items():
            out[f"stim_{name}.values"] = np.zeros((n, p.width))
        return out

    def _values(self, x: np.ndarray, y: np.ndarray, n_valid: int, stim: dict) -> dict:
        """Every run-time value (handle key -> plain value in Brian2 base units)."""
        c, plan, mode = self.circuit, self.plan, self.circuit["rate.plasticity"]
        n = x.shape[0]
        mask = (np.arange(n) < n_valid).astype(float)
        vals: dict[str, Any] = {"x_in.values": x, "y_in.values": y}
        for g, arr in self.schedule.gates(n, mode, mask).items():
            vals[f"{g}.values"] = arr
        for name, p in self.layout.populations.items():
            b = p.brian_name
            vals[f"stim_{name}.values"] = stim[name]
            on, value = self.hooks.clamp_values(name)
            vals[f"{b}.clamp_on"] = on
            vals[f"{b}.clamp_value"] = value
            if p.role in ("upstream", "output"):
                vals[f"{b}.tau_up"] = c["rate.tau_up"] * 1e-3
            elif p.role in ("downstream", "error"):
                vals[f"{b}.tau_down"] = c["rate.tau_down"] * 1e-3
        T_p = self.schedule.plasticity_time_ms(mode) * 1e-3
        for name, pr in self.layout.projections.items():
            b = pr.brian_name
            if pr.group == "pred":
                continue
            i, j = connection_indices(pr)
            base = self.weights[name] if pr.stored else np.eye(*pr.shape)  # Vbar^{K-1} = I fixed
            vals[f"{b}.w"] = matrix_to_w(self.hooks.effective(name, base), i, j)
            if pr.stored:
                mask = self.hooks.plasticity_mask(name)
                vals[f"{b}.eta"] = plan.eta[pr.group]
                vals[f"{b}.c_decay"] = plan.decay[pr.group]
                if not plan.learns(pr.group):
                    vals[f"{b}.plastic"] = 0.0
                else:
                    vals[f"{b}.plastic"] = 1.0 if mask is None else matrix_to_w(mask, i, j)
                vals[f"{b}.T_p"] = T_p
        return vals

    # -- running ------------------------------------------------------------------
    def run_trials(self, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Run one trial per row of ``x`` (n, d_0) with targets ``y`` (n, d_K), one plasticity
        window each (online learning, in order).  Returns ``(new_weights, activities)``:
        activities ``h0..hK`` and ``hbar1..hbarK`` as (n, width) arrays, recorded at the end of
        each trial's feedback phase, before its update."""
        x, y = self._trial_arrays(x, y)
        self.apply_lesions()  # hooks.lesion() since the last run: those synapses are 0 from now on
        n = x.shape[0]
        stim_all = {name: self.hooks.stimulus(name, n) for name in self.layout.populations}
        chunk = self._run_size(n)
        acts: dict[str, list] = {}
        recs: dict[str, dict[str, list]] = {}
        t_offset = 0.0
        for start, stop, pad in self._run_slices(n, chunk):
            nv = stop - start
            m = nv + pad

            def padded(a):
                return np.concatenate([a[start:stop], np.zeros((pad, a.shape[1]))]) if pad else a[start:stop]

            values = self._values(padded(x), padded(y), nv, {k: padded(v) for k, v in stim_all.items()})
            runner = self.runner(m)
            self.last_runner = runner
            out = runner.run(values, self.schedule.run_duration_ms(m), self._collect,
                             template=self._template(m) if runner.standalone else None)
            for k, w in out["weights"].items():
                silent = self.hooks.silent_mask(k)
                if silent is not None:  # silenced synapses ran at 0 without plasticity: keep their weights
                    w[silent] = self.weights[k][silent]
                self.weights[k] = w
            for k, a in out["activities"].items():
                acts.setdefault(k, []).append(a[:nv])
            t_valid = nv * self.schedule.t_trial_ms
            for key, r in out["recordings"].items():
                keep = r["t"] < t_valid - 1e-9
                recs.setdefault(key, {"t": [], "values": []})
                recs[key]["t"].append(r["t"][keep] + t_offset)
                recs[key]["values"].append(r["values"][keep])
            t_offset += t_valid
        for name, w in self.weights.items():
            if not np.all(np.isfinite(w)):
                raise DivergenceError(f"rate network diverged: {name} has NaN/inf after the run; lower the "
                                      "learning rates (eta.*) or shorten rate.dt relative to the time constants")
        self.recordings = {k: {"t": np.concatenate(v["t"]), "values": np.concatenate(v["values"])}
                           for k, v in recs.items()}
        activities = {k: np.concatenate(v) for k, v in acts.items()}
        order = [f"h{k}" for k in range(self.layout.K + 1)] + [f"hbar{k}" for k in range(1, self.layout.K + 1)]
        return self.get_weights(), {k: activities[k] for k in order}

    def _collect(self, asm: NetworkAssembly) -> dict:
        weights = {}
        for name, pr in self.layout.projections.items():
            if not pr.stored:
                continue
            s = asm.synapses[pr.brian_name]
            weights[name] = w_to_matrix(np.asarray(s.w[:]), np.asarray(s.i[:]), np.asarray(s.j[:]), pr.shape)
        activities = {}
        for name, p in self.layout.populations.items():
            act = "h" if p.stream == "up" else "hbar"
            mon = asm.monitors[f"snap_{name}"]
            # (n + 1, width) samples at t = 0, T, ..., nT: sample m + 1 holds trial m's snapshot
            samples = np.asarray(getattr(mon, f"{act}_rec")).T
            activities[name] = samples[1:]
        recordings = {}
        for k, r in enumerate(self.hooks.sorted_recordings()):
            key, target, variable, indices = r.key, r.target, r.variable, r.indices
            mon = asm.monitors[f"rec_{k}"]
            vals = np.asarray(getattr(mon, variable)).T
            t = np.asarray(mon.t_) * 1e3
            if target in self.layout.projections and variable == "w" and indices is None:
                pr = self.layout.projections[target]
                if pr.connect in ("dense", "all_to_all"):
                    s = asm.synapses[pr.brian_name]
                    i, j = np.asarray(s.i[:]), np.asarray(s.j[:])
                    vals = np.stack([w_to_matrix(v, i, j, pr.shape) for v in vals]) if len(vals) else \
                        np.zeros((0, *pr.shape))
            recordings[key] = {"t": t, "values": vals}
        return {"weights": weights, "activities": activities, "recordings": recordings}
