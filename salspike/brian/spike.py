"""The SAL circuit as a Brian2 spiking network whose EXPECTED plasticity equals the rate rule.

Neuron and synapse models are data: ``models/spike_equations.toml`` (`load_spike_models`), on top
of what the rate level declares in ``models/rate_equations.toml`` (populations, their input
compartments, and each synapse group's kind, summed target and postsynaptic factor).  The layout
(populations ``h{k}``/``hbar{k}``, synapse groups ``W{k}``, ``Wbar{k}``, ``V{k}``, ``Vbar{k}``,
``pred``), the weight conversion, the protocol hooks and the device handling are the shared ones
of `salspike.brian.common`; see docs/spike_network.md for the derivations.

A trial (one input row) of `SpikeNetwork.run_trials`:

1. *Settle.*  The analogue activities are the rate network's fixed point with the same protocol
   hooks (`settle`: the forward pass of Eq. 1, the error module, the downstream pass of Eq. 2;
   equal to `MatrixNetwork.activities` without hooks).
2. *Spike.*  Every population fires at the encoded rate ``r = r0 + s * a`` (``spike.baseline_rate``,
   ``spike.rate_scale``): tier ``poisson`` as Bernoulli/Poisson trains, tier ``two_compartment``
   through a calibrated two-compartment pyramidal neuron.  After ``spike.t_warmup`` a plasticity
   window of ``spike.repeats * spike.t_window`` opens (the ``repeats`` windows of one row
   are one long window: rates are constant within a row, so both average the same way).
3. *Tag and consolidate.*  Each presynaptic spike adds to its synapse's tag the trace of the
   postsynaptic factor (postsynaptic spikes for hebbian V/Vbar, the weighted trace of the spikes
   arriving at the apical/lateral compartment for heterosynaptic W/Wbar) minus a baseline; at the
   end of the trial ``w += eta / (s^2 T Z) * (tag - Z r0 n_S + Z r0^2 b_S T) - c w``, whose
   expectation is exactly the matrix level's ``eta * post_signal * pre - c w``.

Weights stay fixed within a trial (the tag is the synaptic eligibility; consolidation is one step
at the end of the trial, like the rate level's ``one_shot`` mode), so trial i sees the weights
after trial i-1: online learning, as ``MatrixNetwork.step(online=True)``.

Limitations: signed weights (no Dale's law, as at the rate level); a rate clipped at 0 (``a <
-r0/s``) biases the expectation (counted in ``clip_fraction``); algorithm ``bp`` and ``wm`` are not
expressed (as at the rate level); cuda_standalone runs are not seeded per trial (random seed).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..circuit import GROUPS, Circuit, Hooks, Layout, algorithm_plan, circuit_layout, init_weights
from ..circuit.functions import error_signal, relu
from ..errors import ConfigError, DeviceError, DivergenceError, ShapeError
from ..resources import bundled_path
from . import devices
from .assembly import (NetworkAssembly, connection_indices, dense_indices, matrix_to_w, one_to_one_indices,
                       using_codegen_target, w_to_matrix)
from .equations import RateModels, fail, load_rate_models, parse_equations, parse_quantity
from .runner import BrianRunner, shared_runner
from .weights import BrianWeights

__all__ = ["SpikeModels", "load_spike_models", "default_spike_equations_path", "settle", "pairing_norm",
           "trace_decay", "SpikeNetwork", "FICurve", "simulate_fi_curve", "calibrate_model_file",
           "SEED_ENV"]

logger = logging.getLogger(__name__)

SEED_ENV = "SALSPIKE_SEED"
TIERS = ("poisson", "two_compartment")
WINDOWS = ("causal", "symmetric")
SPIKES = "spikes"  # the postsynaptic factor "postsynaptic spike train"
_MODEL_OF_ROLE = {"input": "input", "upstream": "upstream", "output": "upstream",
                  "downstream": "downstream", "error": "error"}
_VARIANT_OPTION = {"V": "v_signal", "Vbar": "vbar_signal"}


def default_spike_equations_path() -> Path:
    """The bundled spike-equations file (models/spike_equations.toml, shipped in the package)."""
    return bundled_path("model", "spike_equations")


# --------------------------------------------------------------------------- models


@dataclasses.dataclass(frozen=True)
class GroupRule:
    """A plastic group's rule at spike level, derived from the rate level's declaration."""

    group: str
    kind: str  # hebbian / heterosynaptic
    target: str  # the compartment it writes (rate level: summed target)
    signals: dict  # rule option value (or "default") -> "spikes" or a compartment name
    window: str  # causal / symmetric


@dataclasses.dataclass(frozen=True)
class SpikeModels:
    """The validated content of a spike-equations file plus the rate level's declarations."""

    source: str
    rate: RateModels
    common: dict
    tiers: dict
    plasticity: dict
    fixed: str
    rules: dict  # group -> GroupRule
    parameters: dict  # tier -> {name: Brian2 quantity}
    calibration: dict  # tier -> sweep settings (quantities)

    def inputs(self, role: str) -> list[str]:
        """Input compartments of a population role (from the rate level)."""
        if role == "input":
            return []
        return list(self.rate.populations[_MODEL_OF_ROLE[role]].get("inputs", []))

    def tier_of(self, role: str, tier: str) -> str:
        """The input population (h0) is always a Poisson population (sensory spike trains)."""
        return "poisson" if role == "input" else tier

    def neuron(self, role: str, tier: str, ext: str | None = None) -> dict:
        """Equations, threshold, reset, refractory, method and namespace of a population."""
        t = self.tier_of(role, tier)
        spec = self.tiers[t]
        eqs = [self.common["neuron"].strip(), spec["neuron"].strip()]
        for c in self.inputs(role):
            eqs.append(self.common["compartment"].strip().replace("{c}", c))
        eqs.append(f"ext_rate = {ext}(t, i) * Hz : Hz" if ext else "ext_rate = 0*Hz : Hz")
        reset = "\n".join(s for s in (self.common["reset"].strip(), spec.get("reset", "").strip()) if s)
        return {"tier": t, "equations": "\n".join(eqs) + "\n", "threshold": spec["threshold"].strip(),
                "reset": reset, "refractory": spec.get("refractory", "").strip() or None,
                "method": spec["method"], "initial": dict(spec.get("initial", {})),
                "inputs": self.inputs(role)}

    def signal(self, group: str, options: Mapping[str, str]) -> str:
        r = self.rules[group]
        if group in _VARIANT_OPTION:
            return r.signals[options[_VARIANT_OPTION[group]]]
        return r.signals["default"]

    def window(self, group: str, signal: str) -> str:
        """symmetric only applies to a spike-train factor; a compartment factor is read causally."""
        w = self.rules[group].window
        return w if signal == SPIKES else "causal"

    def arrival(self, target: str, post_tier: str) -> str:
        lines = [self.common["arrival"].strip().replace("{c}", target)]
        extra = self.tiers[post_tier].get("arrival", "").strip()
        if extra:
            kind = self.tiers[post_tier]["compartments"][target]
            lines.append(extra.replace("{kind}", kind).replace("{c}", target))
        return "\n".join(lines)

    def plastic_code(self, signal: str, window: str) -> tuple[str, str | None]:
        if signal == SPIKES:
            sig, base = "x", "1"
        else:
            sig, base = signal, f"b_{signal}_post"
        on_pre = self.plasticity["on_pre"].replace("{signal}", sig).replace("{baseline}", base)
        on_post = self.plasticity["on_post"] if window == "symmetric" else None
        return on_pre, on_post


def _signal_of(post_factor: str, post_activity: str, post_inputs: list[str], source: str, where: str) -> str:
    if not post_factor.endswith("_post"):
        fail(source, where, f"postsynaptic factor {post_factor!r} must be a '<variable>_post'")
    name = post_factor[:-5]
    if name == post_activity:
        return SPIKES
    if name in post_inputs:
        return name
    fail(source, where, f"postsynaptic factor {post_factor!r} is neither the activity {post_activity!r} nor an "
                         f"input compartment ({post_inputs}); the spike level cannot express it")


def load_spike_models(path: str | Path | None = None, rate_models: str | Path | None = None) -> SpikeModels:
    """Read and validate a spike-equations TOML file (default `default_spike_equations_path()`).

    Checks: required tables and keys; the assembled model of every tier and population role parses
    as Brian2 equations and declares the protocol hooks (``act``, ``spont``, ``ext_rate`` in the
    threshold) and the plasticity variables (``x``, ``n_spk``, per compartment ``{c}``, ``n_{c}``,
    ``b_{c}``); every parameter is '<number> <unit>'; the two-compartment tier places every input
    compartment on ``basal`` or ``apical``; a window is causal or symmetric, and symmetric only for a
    hebbian rule.  An unknown key is an error naming the file and the key.
    """
    path = Path(path) if path is not None else default_spike_equations_path()
    source = str(path)
    if not path.is_file():
        raise ConfigError(f"spike equations file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from None
    known = {"format", "common", "tiers", "plasticity", "fixed", "synapses"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{key}'; allowed: {sorted(known)}")
    for key in sorted(known - {"format"}):
        if key not in data:
            raise ConfigError(f"{source}: missing table [{key}]")
    rate = load_rate_models(rate_models)
    common = data["common"]
    for key in ("neuron", "compartment", "reset", "arrival"):
        if key not in common:
            fail(source, "common", f"missing key '{key}'")
    for key in common:
        if key not in ("neuron", "compartment", "reset", "arrival"):
            fail(source, "common", f"unknown key '{key}'")
    tiers = data["tiers"]
    tier_keys = {"method", "neuron", "threshold", "reset", "refractory", "arrival", "initial", "compartments",
                 "parameters", "calibration"}
    parameters, calibration = {}, {}
    for t in TIERS:
        if t not in tiers:
            fail(source, "tiers", f"missing tier '{t}' (need {list(TIERS)})")
    for t, spec in tiers.items():
        where = f"tiers.{t}"
        if t not in TIERS:
            fail(source, "tiers", f"unknown tier '{t}'; allowed: {list(TIERS)}")
        for key in spec:
            if key not in tier_keys:
                fail(source, where, f"unknown key '{key}'; allowed: {sorted(tier_keys)}")
        for key in ("method", "neuron", "threshold"):
            if key not in spec:
                fail(source, where, f"missing key '{key}'")
        if "ext_rate" not in spec["threshold"]:
            fail(source, where, "the threshold must use ext_rate (protocol hook `inject`)")
        parameters[t] = {k: parse_quantity(v, source, f"{where}.parameters.{k}")
                         for k, v in spec.get("parameters", {}).items()}
        for k, v in spec.get("initial", {}).items():
            parse_quantity(v, source, f"{where}.initial.{k}")
        if spec.get("arrival", "").strip():
            comp = spec.get("compartments")
            if not isinstance(comp, dict):
                fail(source, where, "an 'arrival' code needs a 'compartments' table (compartment -> basal/apical)")
        cal = spec.get("calibration")
        if cal is not None:
            need = {"current_min", "current_max", "points", "t_warmup", "t_measure"}
            if set(cal) != need:
                fail(source, f"{where}.calibration", f"keys must be {sorted(need)}, got {sorted(cal)}")
            calibration[t] = {k: (int(v) if k == "points" else parse_quantity(v, source, f"{where}.calibration.{k}"))
                              for k, v in cal.items()}
    for key in ("model", "on_pre", "on_post"):
        if key not in data["plasticity"]:
            fail(source, "plasticity", f"missing key '{key}'")
    fixed = data["fixed"].get("model")
    if not fixed:
        fail(source, "fixed", "missing key 'model'")

    # the four groups: kind, target and postsynaptic factor come from the rate level
    act_of = {role: rate.populations[role]["activity"] for role in ("upstream", "downstream")}
    group_rules = {}
    for group in GROUPS:
        spec = data["synapses"].get(group)
        if spec is None:
            fail(source, "synapses", f"missing group '{group}'")
        for key in spec:
            if key != "window":
                fail(source, f"synapses.{group}", f"unknown key '{key}' (kind, target and postsynaptic factor "
                                                   f"come from {rate.source})")
        window = spec.get("window")
        if window not in WINDOWS:
            fail(source, f"synapses.{group}", f"window = {window!r}; choose one of {list(WINDOWS)}")
        rs = rate.synapses[group]
        post_role = rs["post"]
        post_inputs = list(rate.populations[post_role].get("inputs", []))
        pf = rs["post_factor"]
        variants = pf if isinstance(pf, dict) else {"default": pf}
        signals = {k: _signal_of(v, act_of[post_role], post_inputs, source, f"synapses.{group}")
                   for k, v in variants.items()}
        if rs["kind"] == "heterosynaptic" and window == "symmetric":
            fail(source, f"synapses.{group}", "a heterosynaptic rule's factor is the input of a compartment, "
                                               "read by presynaptic spikes: window must be 'causal'")
        group_rules[group] = GroupRule(group, rs["kind"], rs["summed"], signals, window)
    for group in data["synapses"]:
        if group not in GROUPS:
            fail(source, "synapses", f"unknown group '{group}'; allowed: {list(GROUPS)}")
    models = SpikeModels(source, rate, common, tiers, data["plasticity"], fixed, group_rules, parameters,
                         calibration)

    # parse every assembled population model and check the hooks
    comp_all = set()
    for role in ("input", "upstream", "output", "downstream", "error"):
        comp_all.update(models.inputs(role))
        for t in TIERS:
            if role == "input" and t != "poisson":
                continue
            spec = models.neuron(role, t, ext="ext_test")
            eqs = parse_equations(source, f"tiers.{t} ({role})", spec["equations"])
            names = set(eqs.names)
            need = ["x", "n_spk", "act", "spont", "r0", "s_rate", "tau_trace", "t_start"]
            for c in spec["inputs"]:
                need += [c, f"n_{c}", f"b_{c}"]
            missing = [v for v in need if v not in names]
            if missing:
                fail(source, f"tiers.{t}", f"the {role} population model must declare {missing}")
    comp = tiers["two_compartment"].get("compartments", {})
    for c in sorted(comp_all):
        if comp.get(c) not in ("basal", "apical"):
            fail(source, "tiers.two_compartment.compartments", f"compartment {c!r} must be 'basal' or 'apical'")
    parse_equations(source, "plasticity", data["plasticity"]["model"])
    parse_equations(source, "fixed", fixed)
    return models


# --------------------------------------------------------------------------- settling


def settle(circuit: Circuit, weights: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray,
           protocol: Hooks | None = None, row: int = 0, n_rows: int = 1,
           identity_lesioned: bool = False) -> dict[str, np.ndarray]:
    """The rate network's fixed point for one input row, with its protocol hooks.

    Upstream: h^0 = x + stim (or the clamp value); u^{k+1} = W^k h^k + stim (or the clamp value),
    h^{k+1} = D_u(u^{k+1}) (identity at the output).  Error module: hbar^K = -dF/dy_hat + stim.
    Downstream: hbar^k = g_d (Wbar^k hbar^{k+1}) + stim with g_d = D_d as a 0/1 gate (Eq. 2/4).
    These are the fixed points of models/rate_equations.toml (a relaxing layer converges to them);
    without hooks they are `MatrixNetwork.activities`.  Returns ``h{k}``, ``hbar{k}`` as (width,)
    arrays plus the inputs ``I_ff{k}``, ``I_fb{k}``, ``I_lat{k}``.
    """
    plan = algorithm_plan(circuit)
    K = circuit.n_layers
    relu_hidden = circuit["upstream_nonlinearity"] == "relu"

    def hooks(name, value):
        if protocol is not None:
            value = value + protocol.stimulus(name, n_rows)[row]
            on, v = protocol.clamp_values(name)
            value = np.where(on > 0, v, value)
        return value

    out: dict[str, np.ndarray] = {}
    h = hooks("h0", np.asarray(x, dtype=np.float64))
    out["h0"] = h
    for k in range(K):
        u = weights[f"W{k}"] @ h
        out[f"I_ff{k + 1}"] = u
        u = hooks(f"h{k + 1}", u)
        h = relu(u) if (k < K - 1 and relu_hidden) else u
        out[f"h{k + 1}"] = h
    top = error_signal(h[None, :], np.asarray(y, dtype=np.float64)[None, :], circuit["loss"])[0]
    hb = hooks(f"hbar{K}", top)
    out[f"hbar{K}"] = hb
    for k in range(K - 1, 0, -1):
        drive = weights[f"Wbar{k}"] @ hb
        lat = weights[f"V{k}"] @ out[f"h{k}"]
        out[f"I_fb{k}"], out[f"I_lat{k}"] = drive, lat
        kind = plan.downstream_nonlinearity
        gate = 1.0 if kind == "identity" else ((lat > 0) if kind == "relu_jacobian" else (drive > 0)).astype(float)
        hb = hooks(f"hbar{k}", gate * drive)
        out[f"hbar{k}"] = hb
    return out


# --------------------------------------------------------------------------- pairing kernel


def trace_decay(dt: float, tau: float, method: str) -> float:
    """Per-step factor q of a trace dx/dt = -x/tau under Brian2's method ('exact' or 'euler')."""
    if method == "exact":
        return float(np.exp(-dt / tau))
    if method == "euler":
        return 1.0 - dt / tau
    raise ConfigError(f"no trace decay for method {method!r}")


def pairing_norm(dt: float, q: float, same_step: bool) -> float:
    """Integral Z (seconds) of the pairing kernel of one ordering: a reading at step n sees an
    event of step m with weight q^(n-m) for m < n (and weight 1 for m = n when ``same_step``).
    For independent stationary trains with rates r (reader) and U (events),
    E[sum over readings of the trace] = r U T Z, with Z = dt q/(1-q) (or dt/(1-q))."""
    return dt * (1.0 if same_step else q) / (1.0 - q)


# --------------------------------------------------------------------------- spec / assembly


def _spec(net: "SpikeNetwork", duration_ms: float) -> dict:
    """Everything that fixes the compiled network (JSON-able)."""
    models, layout, c = net.models, net.layout, net.circuit
    tier = c["spike.tier"]
    pops = {}
    for name, p in layout.populations.items():
        ext = f"ext_{name}" if name in net.injections else None
        spec = models.neuron(p.role, tier, ext)
        pops[name] = {"brian_name": p.brian_name, "n": p.width, "role": p.role, **spec,
                      "ext_steps": int(net._ext_steps(duration_ms)) if ext else 0}
    syns = {}
    order = 0
    for name, pr in layout.projections.items():
        post_tier = pops[pr.post]["tier"]
        on_pre = [models.arrival(pr.target, post_tier)]
        on_post = None
        plastic = pr.stored
        signal = window = None
        if plastic:
            signal = models.signal(pr.group, net.options)
            window = models.window(pr.group, signal)
            pre_code, on_post = models.plastic_code(signal, window)
            on_pre.append(pre_code)
            model = models.plasticity["model"].strip() + "\n"
        else:
            model = models.fixed.strip() + "\n"
        syns[name] = {"brian_name": pr.brian_name, "pre": layout.populations[pr.pre].brian_name,
                      "post": layout.populations[pr.post].brian_name, "post_pop": pr.post, "pre_pop": pr.pre,
                      "model": model, "on_pre": "\n".join(on_pre), "on_post": on_post, "shape": list(pr.shape),
                      "connect": pr.connect, "plastic": plastic, "target": pr.target, "signal": signal,
                      "window": window, "order": order}
        order += 1
    recs = [dataclasses.asdict(r) for r in net.hooks.sorted_recordings()]
    return {"kind": "spike", "tier": tier, "dt_ms": c["spike.dt"], "duration_ms": float(duration_ms),
            "populations": pops, "synapses": syns, "recordings": recs,
            "parameters": {k: repr(v) for k, v in models.parameters.get(tier, {}).items()},
            "seed_env": SEED_ENV}


def _seed_code() -> str:
    from brian2 import prefs

    n = prefs.devices.cpp_standalone.openmp_threads or 1
    return ("{ const char* _salspike_seed = std::getenv(\"%s\");\n"
            "  if (_salspike_seed) { unsigned long _v = std::strtoul(_salspike_seed, 0, 10);\n"
            "    for (int _i=0; _i<%d; _i++) brian::_random_generators[_i].seed(_v + _i); } }" % (SEED_ENV, n))


def _assemble(spec: dict, template: Mapping[str, np.ndarray], models: SpikeModels) -> NetworkAssembly:
    """Create the Brian2 objects of a spike network spec (under the selected device)."""
    import brian2

    dt = spec["dt_ms"]
    asm = NetworkAssembly("spike", dt)
    namespace = dict(models.parameters.get(spec["tier"], {}))
    groups = {}
    for name, p in spec["populations"].items():
        ns = dict(namespace) if p["tier"] != "poisson" else {}
        if p["ext_steps"]:
            key = f"ext_{name}.values"
            v = template.get(key)
            vals = np.zeros((p["ext_steps"], p["n"])) if v is None else np.asarray(v, dtype=np.float64)
            ns[f"ext_{name}"] = asm.timed_array(f"ext_{name}", vals, dt)
        kwargs = {}
        if p["refractory"]:
            kwargs["refractory"] = p["refractory"]
        g = brian2.NeuronGroup(p["n"], p["equations"], threshold=p["threshold"], reset=p["reset"] or None,
                               method=p["method"], name=p["brian_name"], namespace=ns, clock=asm.clock, **kwargs)
        for var, text in p["initial"].items():
            setattr(g, var, parse_quantity(text))
        asm.neurons[p["brian_name"]] = g
        groups[p["brian_name"]] = g
    for name, s in spec["synapses"].items():
        kwargs = {"on_pre": s["on_pre"]}
        if s["on_post"]:
            kwargs["on_post"] = s["on_post"]
        syn = brian2.Synapses(groups[s["pre"]], groups[s["post"]], s["model"], name=s["brian_name"],
                              clock=asm.clock, namespace={}, **kwargs)
        n_post, n_pre = s["shape"]
        i, j = dense_indices(n_post, n_pre) if s["connect"] != "one_to_one" else one_to_one_indices(n_post)
        syn.connect(i=i, j=j)
        # explicit order inside the 'synapses' slot (Brian2 breaks ties by name); the pairing kernel's
        # same-step term depends on it (see `SpikeNetwork._kernel`)
        syn.pre.order = s["order"]
        if s["on_post"]:
            syn.post.order = 1000 + s["order"]
        asm.synapses[s["brian_name"]] = syn
    for k, r in enumerate(spec["recordings"]):
        target, var = r["target"], r["variable"]
        if target in spec["populations"]:
            obj = groups[spec["populations"][target]["brian_name"]]
        else:
            obj = asm.synapses[spec["synapses"][target]["brian_name"]]
        if var == "spikes":
            m = brian2.SpikeMonitor(obj, name=f"rec_{k}", when="thresholds", order=1)
            asm.others.append(m)
        else:
            record = True if r["indices"] is None else list(r["indices"])
            asm.state_monitor(f"rec_{k}", obj, var, r["dt_ms"], record=record)
    if devices.current_device() == "cpp_standalone":
        brian2.get_device().insert_code("main", _seed_code())
    asm.network()
    return asm


# --------------------------------------------------------------------------- transfer function


@dataclasses.dataclass(frozen=True)
class FICurve:
    """A calibrated f-I curve: rates (Hz) at input currents (A), non-decreasing in current."""

    current: np.ndarray
    rate: np.ndarray

    @classmethod
    def from_table(cls, table, source: str = "spike.calibration") -> "FICurve":
        try:
            arr = np.asarray(table, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: must be a list of [current_pA, rate_Hz] pairs") from None
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 3:
            raise ConfigError(f"{source}: must be a list of at least 3 [current_pA, rate_Hz] pairs, got shape "
                              f"{arr.shape}")
        if np.any(np.diff(arr[:, 0]) <= 0) or np.any(np.diff(arr[:, 1]) < 0) or np.any(arr[:, 1] < 0):
            raise ConfigError(f"{source}: currents must increase and rates must be non-negative and "
                              "non-decreasing (re-run `salspike calibrate`)")
        return cls(arr[:, 0] * 1e-12, arr[:, 1])

    def table(self) -> list[list[float]]:
        return [[round(float(i) * 1e12, 4), round(float(r), 4)] for i, r in zip(self.current, self.rate)]

    def rate_at(self, current) -> np.ndarray:
        return np.interp(current, self.current, self.rate)

    def current_for(self, rate) -> tuple[np.ndarray, np.ndarray]:
        """Currents (A) that give ``rate`` (Hz) and a mask of rates outside the calibrated range.
        A rate of 0 maps to the largest current that still gives 0."""
        rate = np.asarray(rate, dtype=np.float64)
        keep = [0]
        for n in range(1, self.rate.size):
            if self.rate[n] > self.rate[keep[-1]]:
                keep.append(n)
            elif self.rate[n] == self.rate[keep[-1]] == 0.0:
                keep[-1] = n
        r, c = self.rate[keep], self.current[keep]
        outside = rate > r[-1]
        return np.interp(np.minimum(rate, r[-1]), r, c), outside


def simulate_fi_curve(models: SpikeModels | None = None, *, dt_ms: float = 0.1, tier: str = "two_compartment",
                      currents_pA: np.ndarray | None = None, seed: int = 0, t_warmup_ms: float | None = None,
                      t_measure_ms: float | None = None, codegen_target: str = "numpy") -> FICurve:
    """Rate vs somatic input current of unconnected neurons of ``tier`` (runtime device): the
    sweep of ``[tiers.<tier>.calibration]``, rates counted over t_measure after t_warmup."""
    import brian2

    models = models or load_spike_models()
    cal = models.calibration.get(tier)
    if cal is None:
        raise ConfigError(f"{models.source}: tier {tier!r} has no [tiers.{tier}.calibration] table")
    if currents_pA is None:
        currents_pA = np.linspace(float(cal["current_min"] / brian2.pA), float(cal["current_max"] / brian2.pA),
                                  cal["points"])
    t_w = float(cal["t_warmup"] / brian2.ms) if t_warmup_ms is None else t_warmup_ms
    t_m = float(cal["t_measure"] / brian2.ms) if t_measure_ms is None else t_measure_ms
    devices.select_device("runtime")
    spec = models.neuron("upstream", tier)  # unconnected: the compartments stay at zero
    with using_codegen_target(codegen_target):
        clock = brian2.Clock(dt=dt_ms * brian2.ms, name="calibration_clock")
        kwargs = {"refractory": spec["refractory"]} if spec["refractory"] else {}
        g = brian2.NeuronGroup(len(currents_pA), spec["equations"], threshold=spec["threshold"],
                               reset=spec["reset"], method=spec["method"], namespace=dict(models.parameters[tier]),
                               clock=clock, name="calibration_neurons", **kwargs)
        for var, text in spec["initial"].items():
            setattr(g, var, parse_quantity(text))
        g.spont = 1.0
        g.r0 = 0 * brian2.Hz
        g.s_rate = 1 * brian2.Hz
        g.tau_trace = 20 * brian2.ms
        g.t_start = t_w * brian2.ms
        if "I_drive" in g.variables:
            g.I_drive = np.asarray(currents_pA) * brian2.pA
        net = brian2.Network(g, name="calibration_network")
        brian2.seed(seed)
        net.run((t_w + t_m) * brian2.ms, namespace={})
        rates = np.asarray(g.n_spk[:]) / (t_m * 1e-3)
    rates = np.maximum.accumulate(rates)
    return FICurve(np.asarray(currents_pA, dtype=np.float64) * 1e-12, rates)


def _format_calibration(curve: FICurve, header: str) -> str:
    rows = ",\n".join(f"  [{i:g}, {r:g}]" for i, r in curve.table())
    return f"{header}calibration = [\n{rows},\n]\n"


def _replace_calibration(text: str, block: str) -> str:
    """Put ``block`` (comment lines + ``calibration = [...]``) into the [spike] table of a TOML
    text, replacing an existing calibration (and the comment lines salspike wrote above it), and
    leaving every other line as it was."""
    lines = text.splitlines(keepends=True)
    header = re.compile(r"^\s*\[\s*spike\s*\]\s*(#.*)?$")
    any_header = re.compile(r"^\s*\[")
    start = next((n for n, l in enumerate(lines) if header.match(l)), None)
    if start is None:
        # a dotted top-level key spike.calibration = ... would clash with a new table: replace it
        for n, l in enumerate(lines):
            if re.match(r"^\s*spike\.calibration\s*=", l):
                end = _value_end(lines, n)
                return "".join(lines[:n] + [block.replace("calibration =", "spike.calibration =", 1)] + lines[end:])
        sep = "" if text.endswith("\n") or not text else "\n"
        return text + sep + "\n[spike]\n" + block
    stop = next((n for n in range(start + 1, len(lines)) if any_header.match(lines[n])), len(lines))
    for n in range(start + 1, stop):
        if re.match(r"^\s*calibration\s*=", lines[n]):
            end = _value_end(lines, n)
            first = n
            while first > start + 1 and lines[first - 1].lstrip().startswith("# salspike calibrate"):
                first -= 1
            return "".join(lines[:first] + [block] + lines[end:])
    # insert at the end of the [spike] table (before trailing blank lines)
    at = stop
    while at > start + 1 and not lines[at - 1].strip():
        at -= 1
    if at > 0 and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    return "".join(lines[:at] + [block] + lines[at:])


def _value_end(lines: list[str], n: int) -> int:
    """Index after the last line of the (possibly multi-line) array value starting on line n."""
    depth, k = 0, n
    while k < len(lines):
        code = lines[k].split("#", 1)[0] if k > n or "=" in lines[k] else lines[k]
        if k == n:
            code = code.split("=", 1)[1]
        depth += code.count("[") - code.count("]")
        k += 1
        if depth <= 0:
            return k
    raise ConfigError("spike.calibration: unterminated array in the model file")


def calibrate_model_file(model_path: str | Path, out: str | Path | None = None, *, seed: int = 0,
                         models: str | Path | None = None) -> Path:
    """Calibrate the two-compartment neuron's transfer function and write it into a model file.

    Simulates the input-current sweep of ``[tiers.two_compartment.calibration]`` with the model's
    ``spike.dt``, tabulates the f-I curve (made non-decreasing) and writes it as
    ``spike.calibration = [[current_pA, rate_Hz], ...]`` into ``out`` (default: the model file
    itself), keeping every other line of the file.  Returns the path written.
    """
    from ..results import atomic_write_text

    model_path = Path(model_path)
    circuit = Circuit.load(model_path)  # validates the file first
    sm = load_spike_models(models)
    curve = simulate_fi_curve(sm, dt_ms=circuit["spike.dt"], seed=seed)
    digest = hashlib.sha256(Path(sm.source).read_bytes()).hexdigest()[:12]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    header = (f"# salspike calibrate ({stamp}): f-I curve [input current pA, rate Hz] of the two_compartment "
              f"neuron of {Path(sm.source).name} (sha256 {digest}), dt = {circuit['spike.dt']:g} ms\n")
    text = _replace_calibration(model_path.read_text(), _format_calibration(curve, header))
    target = Path(out) if out is not None else model_path
    tmp_check = tomllib.loads(text)  # must stay valid TOML
    Circuit.from_dict(tmp_check, source=str(target))
    atomic_write_text(target, text)
    return target


# --------------------------------------------------------------------------- the network


class SpikeNetwork(BrianWeights):
    """The circuit as a Brian2 spiking network (tier ``spike.tier``).

    Parameters
    ----------
    circuit
        A resolved `Circuit`.  Spike parameters: ``spike.tier``, ``spike.baseline_rate`` (r0, Hz),
        ``spike.rate_scale`` (s, Hz per unit activity), ``spike.t_window``, ``spike.t_warmup``,
        ``spike.tau_trace``, ``spike.dt`` (ms), ``spike.repeats``, ``spike.calibration``
        (two_compartment).
    weights
        Initial weights in the cross-level layout; default `init_weights(circuit)`.
    device
        ``runtime``, ``cpp_standalone`` or ``cuda_standalone``.
    repeats
        Plasticity windows of ``spike.t_window`` per input row (trial) (default ``spike.repeats``);
        they run as one window of ``repeats * t_window`` after the warm-up.
    seed
        Seed of the spike trains (default: the circuit's ``seed``); trial n of the network's
        lifetime uses a seed derived from (seed, n), so reruns are reproducible.
    build_dir, compile_jobs, cuda_options, codegen_target, profile, models
        As for `salspike.brian.rate.RateNetwork` (``models``: a spike-equations file).
    """

    def __init__(self, circuit: Circuit, weights: Mapping[str, np.ndarray] | None = None, *,
                 device: str = "runtime", repeats: int | None = None, seed: int | None = None,
                 build_dir: str | Path | None = None, compile_jobs: int | None = None,
                 cuda_options: Mapping[str, Any] | None = None, codegen_target: str | None = "numpy",
                 profile: bool = False, models: str | Path | None = None):
        if not circuit.resolved:
            raise ConfigError(f"{circuit.source}: input/output widths are 'auto'; resolve them "
                              "(Circuit.with_io_widths) before building the spike network")
        if device not in devices.DEVICES:
            raise DeviceError(f"unknown Brian2 device {device!r}; allowed: {', '.join(devices.DEVICES)}")
        self.models = load_spike_models(models)
        self.device = device
        self.build_dir = build_dir
        self.compile_jobs = compile_jobs
        self.cuda_options = cuda_options
        self.codegen_target = codegen_target
        self.profile = bool(profile)
        repeats = circuit["spike.repeats"] if repeats is None else repeats
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ConfigError(f"repeats must be a positive integer, got {repeats!r}")
        self.repeats = repeats
        self.seed = circuit["seed"] if seed is None else int(seed)
        self._set_circuit(circuit)
        self.hooks = Hooks(self.layout)
        self.silenced: dict[str, np.ndarray] = {}
        self.injections: dict[str, list[tuple[int, float]]] = {}
        self.set_weights(init_weights(circuit) if weights is None else weights)
        self.recordings: dict[str, dict[str, np.ndarray]] = {}
        self.last_runner: BrianRunner | None = None
        self.n_runs = 0
        self.last: dict[str, Any] = {}
        self.clip_fraction = 0.0

    # -- circuit ------------------------------------------------------------------
    def _set_circuit(self, circuit: Circuit) -> None:
        plan = algorithm_plan(circuit)
        src = circuit.source
        if plan.wbar_mode == "tied":
            raise ConfigError(f"{src}: algorithm 'bp' ties Wbar to W^T (weight transport), which no local synapse "
                              "rule expresses; the spike level runs sal, fa and kp. Use the matrix level for bp.")
        if plan.wbar_mode == "mirror":
            raise ConfigError(f"{src}: algorithm 'wm' (weight mirroring) needs a noise-driven mirror phase that the "
                              "spike level does not implement; use the matrix level, or 'kp'.")
        for key in ("spike.dt", "spike.t_window", "spike.tau_trace", "spike.rate_scale"):
            if circuit[key] <= 0:
                raise ConfigError(f"{src}: '{key}' must be > 0, got {circuit[key]}")
        for key in ("spike.t_warmup", "spike.baseline_rate"):
            if circuit[key] < 0:
                raise ConfigError(f"{src}: '{key}' must be >= 0, got {circuit[key]}")
        dt = circuit["spike.dt"]
        for key in ("spike.t_window", "spike.t_warmup"):
            n = circuit[key] / dt
            if abs(n - round(n)) > 1e-9 * max(n, 1):
                raise ConfigError(f"{src}: {key} = {circuit[key]} ms is not an integer multiple of spike.dt = {dt} ms")
        self.circuit = circuit
        self.plan = plan
        self.options = circuit.rule_options
        self.tier = circuit["spike.tier"]
        self.layout: Layout = circuit_layout(circuit, "one_to_one")
        self.curve = None
        if self.tier == "two_compartment":
            cal = circuit["spike.calibration"]
            if cal is None:
                raise ConfigError(f"{src}: spike.tier = 'two_compartment' needs a calibrated transfer function in "
                                  f"'spike.calibration'; run `salspike calibrate --model {src}` first")
            self.curve = FICurve.from_table(cal, f"{src}: spike.calibration")

    def record(self, target: str, variable: str, dt: float | None = None,
               indices: Iterable[int] | None = None) -> str:
        """Record a variable of a population (``spikes``, ``x``, ``I_apical``, ``v``...) or a synapse
        group (``tag``, ``w``) during the next runs: ``self.recordings[key] = {"t": ms, "values":
        (n_samples, n_recorded)}`` (``spikes``: ``{"t": ms, "i": neuron}``), time running over the
        rows of a call.  Changes the compiled network."""
        if dt is not None and variable != "spikes":
            n = dt / self.circuit["spike.dt"]
            if abs(n - round(n)) > 1e-9 * max(n, 1):
                raise ConfigError(f"record: dt = {dt} ms is not a multiple of spike.dt = {self.circuit['spike.dt']} ms")
        return self.hooks.record(target, variable, dt, indices)

    # -- spike-level hooks ----------------------------------------------------------
    def silence(self, population: str, neurons: Iterable[int] | None = None) -> None:
        """No spontaneous (encoded) firing: Poisson rate 0; two-compartment soma held below threshold
        by I_hold.  Injected spikes still occur."""
        pop = self.layout.population(population)
        mask = self.silenced.get(population, np.zeros(pop.width))
        idx = np.arange(pop.width) if neurons is None else np.asarray(list(neurons), dtype=int)
        mask[idx] = 1.0
        self.silenced[population] = mask

    def unsilence(self, population: str) -> None:
        self.layout.population(population)
        self.silenced.pop(population, None)

    def inject(self, population: str, neurons: Iterable[int], times_ms: Iterable[float]) -> None:
        """Force spikes of ``neurons[n]`` at ``times_ms[n]`` (ms from the start of every row's run,
        warm-up included; rounded to the step).  Changes the compiled network."""
        pop = self.layout.population(population)
        neurons, times = np.asarray(list(neurons), dtype=int), np.asarray(list(times_ms), dtype=float)
        if neurons.shape != times.shape:
            raise ShapeError("inject: neurons and times_ms must have the same length")
        if neurons.size and (neurons.min() < 0 or neurons.max() >= pop.width):
            raise ShapeError(f"inject({population!r}): neuron indices must be in 0..{pop.width - 1}")
        if times.size and times.min() < 0:
            raise ShapeError("inject: times must be >= 0 ms")
        self.injections.setdefault(population, []).extend(zip(neurons.tolist(), times.tolist()))

    def clear_injections(self) -> None:
        self.injections.clear()

    # -- schedule -------------------------------------------------------------------
    @property
    def t_window_ms(self) -> float:
        return self.repeats * self.circuit["spike.t_window"]

    @property
    def duration_ms(self) -> float:
        return self.circuit["spike.t_warmup"] + self.t_window_ms

    def _ext_steps(self, duration_ms: float) -> int:
        return int(round(duration_ms / self.circuit["spike.dt"]))

    def _ext_values(self, name: str) -> np.ndarray:
        dt = self.circuit["spike.dt"]
        arr = np.zeros((self._ext_steps(self.duration_ms), self.layout.populations[name].width))
        for n, t in self.injections.get(name, []):
            step = int(round(t / dt))
            if step < arr.shape[0]:
                arr[step, n] = 1.0 / (dt * 1e-3)  # rate * dt = 1: a certain spike
        return arr

    # -- building -------------------------------------------------------------------
    def spec(self) -> dict:
        return _spec(self, self.duration_ms)

    def runner(self) -> BrianRunner:
        spec = self.spec()
        models = self.models
        runner = BrianRunner(self.device, lambda template, spec=spec: _assemble(spec, template, models), spec,
                             kind=f"spike-{self.tier}", build_dir=self.build_dir, compile_jobs=self.compile_jobs,
                             cuda_options=self.cuda_options, codegen_target=self.codegen_target,
                             profile=self.profile)
        return shared_runner(runner)

    def compile(self, n_trials: int | None = None, *, compile: bool = True) -> BrianRunner:
        """Standalone: generate and (compile=True) compile the project without running it.
        ``n_trials`` is accepted for the rate level's signature (`salspike build`) and ignored: the
        spike level runs one input row per binary run (its settling is done between rows)."""
        runner = self.runner()
        runner.compile(self._template(), self.duration_ms, compile=compile)
        self.last_runner = runner
        return runner

    def _template(self) -> dict:
        return {f"ext_{name}.values": self._ext_values(name) for name in self.injections}

    def _kernel(self, spec: dict) -> dict[str, float]:
        """Z (s) of every plastic group: the pairing kernel's integral (`pairing_norm`)."""
        dt = self.circuit["spike.dt"] * 1e-3
        tau = self.circuit["spike.tau_trace"] * 1e-3
        pops, syns = spec["populations"], spec["synapses"]
        out = {}
        self.kernel_info = {}
        for name, s in syns.items():
            if not s["plastic"]:
                continue
            q_post = trace_decay(dt, tau, pops[s["post_pop"]]["method"])
            same = False  # resets (trace += 1) run after the synapses slot
            if s["signal"] == SPIKES:
                z = pairing_norm(dt, q_post, False)
                if s["window"] == "symmetric":
                    z += pairing_norm(dt, trace_decay(dt, tau, pops[s["pre_pop"]]["method"]), False)
            else:
                writer = next(w for w in syns.values() if w["post_pop"] == s["post_pop"] and w["target"] == s["signal"])
                same = writer["order"] < s["order"]
                z = pairing_norm(dt, q_post, same)
            out[name] = z
            self.kernel_info[name] = {"Z": z, "q": q_post, "same_step": same, "window": s["window"],
                                      "signal": s["signal"]}
        return out

    # -- per-row values ---------------------------------------------------------------
    def _rates(self, act: np.ndarray, name: str) -> np.ndarray:
        c = self.circuit
        r = c["spike.baseline_rate"] + c["spike.rate_scale"] * act
        r = np.maximum(r, 0.0)
        return r * (1.0 - self.silenced.get(name, 0.0))

    def _input_weights(self, name: str, comp: str) -> tuple[np.ndarray, str] | None:
        """Weight matrix (n_post x n_pre) delivering into compartment ``comp`` of population ``name``."""
        for pr in self.layout.projections.values():
            if pr.post == name and pr.target == comp:
                if pr.stored:
                    return self.weights[pr.name], pr.pre
                lesioned = pr.name in self.hooks.lesioned
                return (np.zeros(pr.shape) if lesioned else np.eye(*pr.shape)), pr.pre
        return None

    def _values(self, acts: dict[str, np.ndarray], spec: dict, kernel: dict[str, float]) -> dict:
        c = self.circuit
        r0, s = c["spike.baseline_rate"], c["spike.rate_scale"]
        t_start = c["spike.t_warmup"] * 1e-3
        vals: dict[str, Any] = {}
        rates = {name: self._rates(acts[name], name) for name in self.layout.populations}
        for name, p in spec["populations"].items():
            b = p["brian_name"]
            spont = 1.0 - self.silenced.get(name, np.zeros(p["n"]))
            vals.update({f"{b}.act": acts[name], f"{b}.spont": spont, f"{b}.r0": r0, f"{b}.s_rate": s,
                         f"{b}.tau_trace": c["spike.tau_trace"] * 1e-3, f"{b}.t_start": t_start})
            for var, text in p["initial"].items():
                vals[f"{b}.{var}"] = float(parse_quantity(text))
            mean_syn = {"basal": np.zeros(p["n"]), "apical": np.zeros(p["n"])}
            for comp in p["inputs"]:
                found = self._input_weights(name, comp)
                M, pre = found if found is not None else (np.zeros((p["n"], 1)), None)
                vals[f"{b}.b_{comp}"] = M.sum(axis=1)
                if p["tier"] == "two_compartment" and pre is not None:
                    kind = self.models.tiers["two_compartment"]["compartments"][comp]
                    mean_syn[kind] += M @ rates[pre]  # U = sum_j w_ij r_j (Hz)
            if p["tier"] == "two_compartment":
                vals[f"{b}.I_drive"] = self._drive_current(rates[name], mean_syn, name)
            if name in self.injections:
                vals[f"ext_{name}.values"] = self._ext_values(name)
        for name, sp in spec["synapses"].items():
            b = sp["brian_name"]
            pr = self.layout.projections[name]
            i, j = connection_indices(pr)
            if pr.stored:
                W = self.weights[name]
            elif pr.group == "pred":
                W = np.eye(*pr.shape)
            else:
                W = np.zeros(pr.shape) if name in self.hooks.lesioned else np.eye(*pr.shape)
            vals[f"{b}.w"] = matrix_to_w(W, i, j)
            if sp["plastic"]:
                vals[f"{b}.zr0"] = kernel[name] * r0
        return vals

    def _drive_current(self, rate: np.ndarray, mean_syn: dict, name: str) -> np.ndarray:
        """Somatic current for the target rate: the calibrated f-I curve inverted, minus the mean
        synaptic current (basal J_b tau_b U_b into the soma; apical J_a tau_a U_a into the dendrite,
        of which the fraction g_c / (g_Ld + g_c) reaches the soma)."""
        p = self.models.parameters["two_compartment"]
        f = lambda q, unit: float(q / unit)  # noqa: E731
        import brian2

        I, outside = self.curve.current_for(rate)
        self._outside += int(np.sum(outside & (rate > 0)))
        kappa = f(p["g_c"], brian2.nS) / (f(p["g_Ld"], brian2.nS) + f(p["g_c"], brian2.nS))
        basal = f(p["J_basal"], brian2.amp) * f(p["tau_basal"], brian2.second) * mean_syn["basal"]
        apical = f(p["J_apical"], brian2.amp) * f(p["tau_apical"], brian2.second) * mean_syn["apical"]
        return I - basal - kappa * apical

    # -- running ----------------------------------------------------------------------
    def _run_seed(self) -> int:
        return int(np.random.SeedSequence([self.seed, self.n_runs]).generate_state(1)[0] % (2**31 - 1))

    def run_trials(self, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """One spiking trial per row of ``x`` (n, d_0) with targets ``y`` (n, d_K), in order (online).

        Returns ``(new_weights, activities)``: activities ``h0..hK``, ``hbar1..hbarK`` as (n, width)
        arrays, the settled analogue activities each row's spikes encoded (before its update).
        ``self.last`` holds per row the spike-count estimates of the activities (``(count/T - r0)/s``)
        and the spike-level weight changes (``updates``), ``self.recordings`` the recordings."""
        import brian2

        x, y = self._trial_arrays(x, y)
        self.apply_lesions()  # hooks.lesion() since the last run: those synapses are 0 from now on
        partial = sorted(set(self.hooks.lesions) - self.hooks.lesioned)
        if partial or self.hooks.apical_silenced:
            what = f"partial lesions of {partial}" if partial else "silence_apical"
            raise ConfigError(f"the spike level does not yet support {what} (its activities come from the rate "
                              "fixed point); run this manipulation at the matrix or rate level")
        n = x.shape[0]
        c = self.circuit
        r0, s = c["spike.baseline_rate"], c["spike.rate_scale"]
        T = self.t_window_ms * 1e-3
        spec = self.spec()
        kernel = self._kernel(spec)
        runner = self.runner()
        self.last_runner = runner
        steps = self.duration_ms / c["spike.dt"]
        if not runner.standalone and steps > 2e5 / max(n, 1) and not getattr(self, "_warned_slow", False):
            self._warned_slow = True
            logger.warning("spike level on the runtime device: %d rows x %.3g steps (about 1 ms per step with numpy "
                           "code generation); use device cpp_standalone for long windows", n, steps)
        identity_lesioned = any(not pr.stored and pr.group == "Vbar" and pr.name in self.hooks.lesioned
                                for pr in self.layout.projections.values())
        acts: dict[str, list] = {}
        estimates: dict[str, list] = {}
        counts: dict[str, list] = {}
        updates: dict[str, list] = {}
        recs: dict[str, dict[str, list]] = {}
        clipped = total = 0
        self._outside = 0
        for row in range(n):
            settled = settle(c, self.weights, x[row], y[row], self.hooks, row, n, identity_lesioned)
            pop_acts = {name: settled[name] for name in self.layout.populations}
            for name, a in pop_acts.items():
                live = 1.0 - self.silenced.get(name, 0.0)
                clipped += int(np.sum((r0 + s * a < 0) & (live > 0)))
                total += a.size
            if (r0 + s * max(float(np.max(a)) for a in pop_acts.values())) * c["spike.dt"] * 1e-3 > 1:
                logger.warning("spike level: an encoded rate exceeds 1/dt; lower spike.rate_scale or spike.dt")
            values = self._values(pop_acts, spec, kernel)
            seed = self._run_seed()
            self.n_runs += 1
            old_env = os.environ.get(SEED_ENV)
            os.environ[SEED_ENV] = str(seed)
            try:
                if not runner.standalone:
                    brian2.seed(seed)
                out = runner.run(values, self.duration_ms, lambda asm: self._collect(asm, spec),
                                 template=self._template() if runner.standalone else None)
            finally:
                if old_env is None:
                    os.environ.pop(SEED_ENV, None)
                else:
                    os.environ[SEED_ENV] = old_env
            deltas = self._consolidate(out, values, spec, kernel, T)
            for k, dW in deltas.items():
                self.weights[k] = self.weights[k] + dW
                updates.setdefault(k, []).append(dW)
            for name in self.layout.populations:
                acts.setdefault(name, []).append(pop_acts[name])
                estimates.setdefault(name, []).append((out["n_spk"][name] / T - r0) / s)
                counts.setdefault(name, []).append(out["n_spk"][name])
            for key, r in out["recordings"].items():
                rr = recs.setdefault(key, {})
                for field, arr in r.items():
                    arr = arr + row * self.duration_ms if field == "t" else arr
                    rr.setdefault(field, []).append(arr)
        for name, w in self.weights.items():
            if not np.all(np.isfinite(w)):
                raise DivergenceError(f"spike network diverged: {name} has NaN/inf; lower the learning rates (eta.*)")
        self.clip_fraction = clipped / max(total, 1)
        if clipped:
            logger.warning("spike level: %d of %d encoded rates were clipped at 0 Hz (activity < -r0/s = %.3g); "
                           "their expected updates are biased: raise spike.baseline_rate or lower spike.rate_scale",
                           clipped, total, -r0 / s)
        if self._outside:
            logger.warning("spike level: %d target rates exceed the calibrated range; re-run `salspike calibrate` "
                           "with a larger current_max", self._outside)
        self.recordings = {k: {f: np.concatenate(v) for f, v in r.items()} for k, r in recs.items()}
        self.last = {"estimates": {k: np.stack(v) for k, v in estimates.items()},
                     "spike_counts": {k: np.stack(v) for k, v in counts.items()},
                     "updates": {k: np.stack(v) for k, v in updates.items()},
                     "kernel": kernel, "window_s": T, "clip_fraction": self.clip_fraction}
        order = [f"h{k}" for k in range(self.layout.K + 1)] + [f"hbar{k}" for k in range(1, self.layout.K + 1)]
        return self.get_weights(), {k: np.stack(acts[k]) for k in order}

    def _collect(self, asm: NetworkAssembly, spec: dict) -> dict:
        out = {"tag": {}, "n_spk": {}, "n_comp": {}, "recordings": {}}
        for name, s in spec["synapses"].items():
            if s["plastic"]:
                syn = asm.synapses[s["brian_name"]]
                out["tag"][name] = w_to_matrix(np.asarray(syn.tag[:]), np.asarray(syn.i[:]), np.asarray(syn.j[:]),
                                               tuple(s["shape"]))
        for name, p in spec["populations"].items():
            g = asm.neurons[p["brian_name"]]
            out["n_spk"][name] = np.asarray(g.n_spk[:], dtype=np.float64)
            out["n_comp"][name] = {comp: np.asarray(getattr(g, f"n_{comp}")[:], dtype=np.float64)
                                   for comp in p["inputs"]}
        for k, r in enumerate(self.hooks.sorted_recordings()):
            if r.variable == "spikes":
                m = next(o for o in asm.others if getattr(o, "name", None) == f"rec_{k}")
                t, i = np.asarray(m.t_) * 1e3, np.asarray(m.i[:])
                if r.indices is not None:
                    keep = np.isin(i, r.indices)
                    t, i = t[keep], i[keep]
                out["recordings"][r.key] = {"t": t, "i": i}
            else:
                mon = asm.monitors[f"rec_{k}"]
                out["recordings"][r.key] = {"t": np.asarray(mon.t_) * 1e3,
                                            "values": np.asarray(getattr(mon, r.variable + "_")
                                                                 if hasattr(mon, r.variable + "_")
                                                                 else getattr(mon, r.variable)).T}
        return out

    def _consolidate(self, out: dict, values: dict, spec: dict, kernel: dict, T: float) -> dict[str, np.ndarray]:
        """Consolidation at the end of a trial:
        dw = eta / (s^2 T Z) * (tag - Z r0 n_S + Z r0^2 b_S T) - c w  (see the module docstring)."""
        c, plan = self.circuit, self.plan
        r0, s = c["spike.baseline_rate"], c["spike.rate_scale"]
        deltas = {}
        for name, sp in spec["synapses"].items():
            if not sp["plastic"]:
                continue
            pr = self.layout.projections[name]
            g = pr.group
            learns = g in plan.plastic and not (g == "Wbar" and plan.wbar_mode != "plastic")
            if not learns or name in self.hooks.frozen or name in self.hooks.lesioned:
                continue
            Z = kernel[name]
            post = sp["post_pop"]
            if sp["signal"] == SPIKES:
                n_sig = out["n_spk"][post]
                b_sig = np.ones_like(n_sig)
            else:
                n_sig = out["n_comp"][post][sp["signal"]]
                b_sig = np.asarray(values[f"{spec['populations'][post]['brian_name']}.b_{sp['signal']}"], dtype=float)
            total = out["tag"][name] - (Z * r0 * n_sig)[:, None] + (Z * r0 * r0 * T * b_sig)[:, None]
            eta = plan.eta[g]
            coef = plan.decay[g]
            W = self.weights[name]
            dW = eta / (s * s * T * Z) * total
            if pr.connect == "one_to_one":
                dW = dW * np.eye(*pr.shape)
            if coef:
                dW = dW - coef * W
            deltas[name] = dW
        return deltas

    def update_noise(self, x_row: np.ndarray, y_row: np.ndarray) -> dict[str, np.ndarray]:
        """Predicted standard deviation of each plastic weight's spike-level update for one row
        (tier poisson, current weights, leading order in tau/T; docs/spike_network.md):

        Var(dw) = eta^2 [s^2 h_pre^2 Q + s^2 u^2 r_pre + r_pre Q / (2 tau)] / (s^4 T)   (causal)

        with r_pre the presynaptic rate, u the postsynaptic factor (activity units) and Q the
        variance rate of its spike train (r_post for spikes; sum_k v_k^2 r_k for a compartment fed
        by weights v from rates r_k).  A symmetric window halves the last (pairing) term."""
        c = self.circuit
        r0, s, tau = c["spike.baseline_rate"], c["spike.rate_scale"], c["spike.tau_trace"] * 1e-3
        T = self.t_window_ms * 1e-3
        st = settle(c, self.weights, x_row, y_row, self.hooks)
        spec = self.spec()
        out = {}
        for name, sp in spec["synapses"].items():
            if not sp["plastic"]:
                continue
            pre, post = sp["pre_pop"], sp["post_pop"]
            r_pre = self._rates(st[pre], pre)
            if sp["signal"] == SPIKES:
                u, Q = st[post], self._rates(st[post], post)
            else:
                M, src = self._input_weights(post, sp["signal"])
                u, Q = M @ st[src], (M * M) @ self._rates(st[src], src)
            cross = 4.0 if sp["window"] == "symmetric" else 2.0
            h_pre = (r_pre - r0) / s
            var = (s * s * (h_pre ** 2)[None, :] * Q[:, None] + s * s * (u ** 2)[:, None] * r_pre[None, :]
                   + r_pre[None, :] * Q[:, None] / (cross * tau)) / (s ** 4 * T)
            out[name] = self.plan.eta[self.layout.projections[name].group] * np.sqrt(var)
        return out

    def close(self) -> None:
        """Nothing to release (standalone builds stay cached for reuse)."""
