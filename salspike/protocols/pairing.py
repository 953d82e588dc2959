"""The pairing window (``protocols/pairing_window.toml``): spike level only, through the spike level's hooks.

A protocol file is validated like a model file: an unknown key, a wrong type or an impossible
value is a `ConfigError` naming the file and the key.  Protocols never import a Brian2 builder:
they use `salspike.levels.make_level("spike", ...)`, the level's hooks (silence, clamp, freeze)
and the closed-loop network's forced spikes (`SpikeNetwork.inject`).

``pairing_window`` (protocols/pairing_window.toml): in a silent network, one presynaptic spike of
``pre`` = h^k and one top-down spike of hbar^{k+1} (reaching the apical compartment of ``post`` =
h^{k+1} through Vbar^k) per pairing, at relative timings delta_t = t_topdown - t_pre, with the
postsynaptic soma held below threshold; the change of W^k is the predicted heterosynaptic timing
window.  All timings run in parallel on different presynaptic neurons (they share the top-down
events of a postsynaptic neuron), plus an unpaired control: the same presynaptic spikes in a
run without top-down spikes, whose change is exactly the weight decay (a silent apical
compartment gives W's heterosynaptic rule nothing to read).  Written: ``pairing_window.csv``, ``pairing_window.json``, ``pairing_window.pdf``
and ``.png``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..circuit import GROUPS, Circuit, algorithm_plan, circuit_layout, init_weights, read_toml_file
from ..circuit.schema import did_you_mean
from ..errors import ConfigError
from ..plotting import FORMATS, OKABE_ITO, pyplot, save_figure, stamp
from ..results import atomic_write_text, provenance, to_jsonable
from ..sketch import draw_sketch, sketch_data
from .hooklog import HookLog

__all__ = ["PROTOCOL_SCHEMA", "load_protocol", "run_pairing_file", "pairing_window", "apical_tag", "paired_run"]

_F = (int, float)
#: key -> (types, default (None: required), doc)
PROTOCOL_SCHEMA: dict[str, tuple[Any, Any, str]] = {
    "protocol": (str, None, "which protocol: pairing_window"),
    "description": (str, "", "free text"),
    "pre": (str, None, "presynaptic upstream population h{k}"),
    "post": (str, None, "postsynaptic population h{k+1}"),
    "post_neurons": ((list, str), "all", "postsynaptic neurons reported: indices or 'all'"),
    "topdown_neurons": ((list, str), "all", "hbar{k+1} neurons firing the top-down input: indices or 'all'"),
    "timings_ms": (list, None, "delta_t = t_topdown - t_pre in ms (negative: top-down first)"),
    "pairings": (int, None, "pairings per timing"),
    "interval_ms": (_F, None, "ms between pairings"),
    "hold_soma": (bool, True, "postsynaptic soma held below threshold (no postsynaptic spikes)"),
    "t_warmup_ms": (_F, 20.0, "ms before the plasticity window"),
    "input_width": (int, None, "d_0 when the model file leaves it 'auto'"),
    "output_width": (int, None, "d_K when the model file leaves it 'auto'"),
}
_OPTIONAL_NONE = {"input_width", "output_width"}
PROTOCOLS = ("pairing_window",)


def load_protocol(path: str | Path) -> dict[str, Any]:
    """Read and validate a protocol file; returns every key with its value or default."""
    src = str(path)
    data = read_toml_file(path, "protocol", "protocols/pairing_window.toml")
    out = {}
    for key, value in data.items():
        if key not in PROTOCOL_SCHEMA:
            hint = did_you_mean(key, PROTOCOL_SCHEMA)
            raise ConfigError(f"{src}: unknown key '{key}'.{hint} Allowed keys: {', '.join(PROTOCOL_SCHEMA)}")
        types, _, doc = PROTOCOL_SCHEMA[key]
        types = types if isinstance(types, tuple) else (types,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            raise ConfigError(f"{src}: key '{key}' must be {'/'.join(t.__name__ for t in types)}, got {value!r} ({doc})")
        out[key] = float(value) if float in types and isinstance(value, int) and not isinstance(value, bool) else value
    for key, (_, default, doc) in PROTOCOL_SCHEMA.items():
        if key not in out:
            if default is None and key not in _OPTIONAL_NONE:
                raise ConfigError(f"{src}: missing key '{key}' ({doc})")
            out[key] = default
    if out["protocol"] not in PROTOCOLS:
        raise ConfigError(f"{src}: key 'protocol' = {out['protocol']!r} is not allowed; choose one of {list(PROTOCOLS)}")
    t = out["timings_ms"]
    if not t or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in t):
        raise ConfigError(f"{src}: key 'timings_ms' must be a non-empty list of numbers (ms)")
    out["timings_ms"] = [float(v) for v in t]
    for key in ("post_neurons", "topdown_neurons"):
        v = out[key]
        if isinstance(v, str) and v != "all" or isinstance(v, list) and not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v):
            raise ConfigError(f"{src}: key '{key}' must be \"all\" or a list of neuron indices, got {v!r}")
    if out["pairings"] < 1:
        raise ConfigError(f"{src}: key 'pairings' must be positive, got {out['pairings']}")
    if out["interval_ms"] <= 0 or out["t_warmup_ms"] < 0:
        raise ConfigError(f"{src}: 'interval_ms' must be > 0 and 't_warmup_ms' >= 0")
    out["source"] = src
    return out


def apical_tag(pre_times_ms, top_times_ms, circuit: Circuit) -> float:
    """Closed form of W's tag per unit top-down weight (spike.tier = "poisson"): at each
    presynaptic spike (step m) the rule reads the apical current, the sum over the top-down
    spikes arrived by then of q^(m - arrival) / (s tau_s), q = exp(-dt / tau_s) (both pathways
    have the same delay; the top-down pathway writes before W reads in a step).  Spike times in
    ms from the run's start; one spike per step and neuron."""
    dt, tau, s = circuit["spike.dt"], circuit["spike.tau_s"], circuit["spike.rate_scale"]
    pre = np.round(np.asarray(pre_times_ms, dtype=np.float64) / dt).astype(int)
    top = np.round(np.asarray(top_times_ms, dtype=np.float64) / dt).astype(int)
    if not pre.size or not top.size:
        return 0.0
    lags = pre[:, None] - top[None, :]
    q = math.exp(-dt / tau)
    return float(np.sum(np.where(lags >= 0, q ** np.maximum(lags, 0), 0.0))) / (s * tau * 1e-3)


def paired_run(level, k: int, pre_trains: Sequence[np.ndarray], top_idx: np.ndarray, top_times: np.ndarray, *,
               hold_soma: bool = True) -> tuple[np.ndarray, float]:
    """One pairing run on an open spike level (its circuit's trial = the protocol): every
    population silenced (the postsynaptic soma too unless ``hold_soma`` is False), every group
    frozen but W^k; presynaptic neuron j of h^k fires ``pre_trains[j]`` (ms), the neurons
    ``top_idx`` of hbar^{k+1} each fire ``top_times`` (ms), reaching h^{k+1}'s apical compartment
    through Vbar^k.  One trial.  Returns (the change of W^k, postsynaptic spikes)."""
    c = level.circuit
    d = c.widths
    net = level.network
    for pop in net.layout.populations:
        level.silence(pop)
    if not hold_soma:
        level.unclamp(f"h{k + 1}")
    for g in GROUPS:
        level.freeze(g)
    name = f"W{k}"
    level.unfreeze(name)
    w0 = np.array(level.weights[name], dtype=np.float64)
    note = getattr(level, "note", None)  # a `HookLog`-wrapped level records what was stimulated
    top_times = np.asarray(top_times, dtype=np.float64)
    if top_times.size:
        net.inject(f"hbar{k + 1}", np.repeat(top_idx, top_times.size), np.tile(top_times, np.size(top_idx)))
        if note:
            note("stimulate", f"hbar{k + 1}", top_idx)
    for j, times in enumerate(pre_trains):
        times = np.asarray(times, dtype=np.float64)
        net.inject(f"h{k}", [j] * times.size, times)
    if note:
        note("stimulate", f"h{k}", range(len(pre_trains)))
    acts = level.step(np.zeros((1, d[0])), np.zeros((1, d[-1])), online=True)  # a recorder or log sees the run
    post_spikes = float(np.abs(acts[f"h{k + 1}"]).sum() * c["spike.rate_scale"] * c["spike.t_window"] * 1e-3)
    return np.array(level.weights[name], dtype=np.float64) - w0, post_spikes


def run_pairing_file(path: str | Path, circuit: Circuit, out: str | Path, *, device: str = "runtime",
                 levels: Sequence[str] = ("rate", "spike"), weights: dict | None = None) -> dict[str, Any]:
    """Run a pairing protocol file on a circuit (spike level) and write its table and figure into ``out``."""
    proto = load_protocol(path)
    if "spike" not in levels:
        raise ConfigError(f"{proto['source']}: a pairing protocol needs spike timing: include the spike level "
                          f"(--levels rate,spike), got {list(levels)}")
    return pairing_window(proto, circuit, Path(out), device=device, weights=weights)


def _indices(spec, width: int, what: str, src: str) -> np.ndarray:
    if spec == "all":
        return np.arange(width)
    idx = np.asarray(spec, dtype=int)
    if idx.size == 0 or idx.max() >= width:
        raise ConfigError(f"{src}: '{what}' indices must be in 0..{width - 1}, got {list(spec)}")
    return idx


def pairing_window(proto: dict, circuit: Circuit, out: Path, *, device: str = "runtime",
                   weights: dict | None = None) -> dict[str, Any]:
    """The pairing protocol (see the module docstring).  Returns ``table`` (text), ``rows``, ``files``."""
    from ..levels import make_level

    src = proto["source"]
    out.mkdir(parents=True, exist_ok=True)
    if not circuit.resolved:
        if proto["input_width"] is None or proto["output_width"] is None:
            raise ConfigError(f"{src}: the model's widths are 'auto'; set input_width and output_width in the "
                              "protocol file or in the model file")
        circuit = circuit.with_io_widths(proto["input_width"], proto["output_width"])
    K = circuit.n_layers
    pre, post = proto["pre"], proto["post"]
    if not (pre.startswith("h") and pre[1:].isdigit() and int(pre[1:]) < K):
        raise ConfigError(f"{src}: key 'pre' = {pre!r} must be an upstream population h0..h{K - 1}")
    k = int(pre[1:])
    if post != f"h{k + 1}":
        raise ConfigError(f"{src}: key 'post' = {post!r}: W{k} connects {pre} to h{k + 1}; set post = \"h{k + 1}\"")
    dt = circuit["spike.dt"]
    tau = circuit["spike.tau_s"]
    timings = proto["timings_ms"]
    steps = [round(v / dt) for v in timings]
    if any(abs(s * dt - v) > 1e-9 for s, v in zip(steps, timings)):
        raise ConfigError(f"{src}: every timing must be a multiple of spike.dt = {dt} ms")
    span = max(abs(v) for v in timings)
    interval = proto["interval_ms"]
    if interval < 2 * span + 6 * tau:
        raise ConfigError(f"{src}: interval_ms = {interval} is too short: pairings overlap unless it is >= "
                          f"2 max|delta_t| + 6 tau_s = {2 * span + 6 * tau:g} ms")
    warm = round(proto["t_warmup_ms"] / dt) * dt
    margin = span + 5 * dt
    window = round((proto["pairings"] * interval + 2 * margin) / dt) * dt
    c = circuit.with_overrides({"spike.t_window": float(window), "spike.t_settle": float(warm)}, source=src)
    w0 = init_weights(c) if weights is None else {n: np.asarray(v, dtype=np.float64) for n, v in weights.items()}
    d = c.widths
    post_idx = _indices(proto["post_neurons"], d[k + 1], "post_neurons", src)
    top_idx = _indices(proto["topdown_neurons"], c.downstream_widths[k + 1], "topdown_neurons", src)
    t_top = warm + margin + interval * np.arange(proto["pairings"])
    slots = [("paired", v) for v in timings]
    width = d[k]
    rounds = math.ceil(len(slots) / width)
    name = f"W{k}"

    hooklog = HookLog()

    def run(chunk, topdown: bool):
        """One protocol run: silent network, injected spikes, only W^k plastic; returns (dW, post spikes)."""
        level = hooklog.wrap(make_level("spike", c, {n: v.copy() for n, v in w0.items()}, device=device))
        try:
            trains = [t_top - delta if kind == "paired" else t_top for kind, delta in chunk]
            return paired_run(level, k, trains, top_idx, t_top if topdown else np.zeros(0),
                              hold_soma=proto["hold_soma"])
        finally:
            level.close()

    results = []
    counts_post = 0.0
    for r in range(rounds):
        chunk = slots[r * width:(r + 1) * width]
        dW, n_post = run(chunk, topdown=True)
        counts_post += n_post
        for j, (kind, delta) in enumerate(chunk):
            results.append({"kind": kind, "delta_t_ms": delta, "dW": dW[post_idx, j], "w": w0[name][post_idx, j]})
    # the real unpaired control: the same presynaptic spikes with no top-down input at all
    dW_control, _ = run([("unpaired", None)], topdown=False)
    control = dW_control[post_idx, 0]

    coef = algorithm_plan(c).decay["W"]
    vbar = w0.get(f"Vbar{k}", np.eye(d[k + 1], c.downstream_widths[k + 1]))
    b_top = vbar[:, top_idx].sum(axis=1)[post_idx]
    s = c["spike.rate_scale"]
    eta = c["eta.W"]
    T = c["spike.t_window"] * 1e-3
    # rate level: the time-averaged rule eta * (apical) * h - c w with the protocol's mean rates
    n = proto["pairings"]
    h_pre = n / (s * T)
    rate_dW = eta * (b_top * n / (s * T)) * h_pre - coef * w0[name][post_idx, 0]
    def tag_per_unit(pre_times: np.ndarray) -> float:
        return apical_tag(pre_times, t_top, c)

    unit = eta / (s * T)  # weight change per unit of tag
    live = np.abs(b_top) > 1e-12
    rows, per_post = [], []
    for r in results:
        lag = -round(r["delta_t_ms"] / dt)  # steps from the top-down spike to the presynaptic spike
        per_unit = unit * tag_per_unit(t_top - r["delta_t_ms"])
        timing = r["dW"] + coef * r["w"]  # the decay (-c w, exact) taken out
        per_post.append((r["delta_t_ms"], [float(v) for v in timing]))
        order = "top-down first" if lag >= 1 else ("same step" if lag == 0 else "presynaptic first")
        rows.append({"delta_t_ms": r["delta_t_ms"], "order": order, "dW": float(np.mean(r["dW"])),
                     "dW_timing_per_unit_topdown": float(np.mean(timing[live] / b_top[live])),
                     "predicted_per_unit_topdown": per_unit,
                     "max_abs_error": float(np.max(np.abs(timing - per_unit * b_top))),
                     "dW_rate_level": float(np.mean(rate_dW))})
    rows.sort(key=lambda row: row["delta_t_ms"])
    per_post.sort(key=lambda item: item[0])
    by_neuron = {"post_neurons": list(map(int, post_idx)), "delta_t_ms": [d for d, _ in per_post],
                 "dW_beyond_decay": [list(v) for v in zip(*(t for _, t in per_post))],
                 "dW_rate_level_beyond_decay": [float(v) for v in rate_dW + coef * w0[name][post_idx, 0]],
                 "meaning": "per postsynaptic neuron (rows) and timing (columns): dW + c w, the change of W "
                            "beyond the weight decay; the rate level's time-averaged rule likewise"}
    meta = {"protocol": src, "synapses": f"{name}: {pre} -> {post}", "topdown": f"hbar{k + 1}{list(map(int, top_idx))} "
            f"-> Vbar{k} -> apical of {post}", "post_neurons": list(map(int, post_idx)),
            "pairings": n, "interval_ms": interval, "window_s": T, "tier": c["spike.tier"],
            "tau_s_ms": tau, "delay_ms": c["spike.delay"], "rate_scale_Hz": s, "eta_W": eta,
            "hold_soma": proto["hold_soma"],
            "dW_unpaired_control": float(np.mean(control)),
            "dW_unpaired_control_beyond_decay": float(np.mean(control + coef * w0[name][post_idx, 0])),
            "dW_unpaired_control_minus_decay_max": float(np.max(np.abs(control + coef * w0[name][post_idx, 0]))),
            "decay_coefficient": coef, "postsynaptic_spikes": counts_post,
            "topdown_weight_per_post_neuron": [float(v) for v in b_top],
            "per_unit_topdown": "dW (decay taken out) divided by the summed top-down (Vbar) weight of the "
                                "stimulated hbar neurons onto each postsynaptic neuron, averaged over them",
            "delta_t": "t_topdown - t_pre (ms); negative: the top-down input comes first",
            "unpaired control": "the same presynaptic spikes in a run without any top-down spike",
            "rule": "causal heterosynaptic: a presynaptic spike reads the apical current of its target "
                    "(the filtered top-down input; no postsynaptic spike needed)"}
    files = [_write_csv(out / "pairing_window.csv", rows)]
    prov = provenance()
    data = {"meta": meta, "rows": rows, "per_post_neuron": by_neuron, "model": c["name"], "seeds": [int(c["seed"])], "commit": prov["git_commit"],
            "sketch": sketch_data(circuit_layout(c), hooklog.summary(), (name, post)), "provenance": prov}
    atomic_write_text(out / "pairing_window.json", json.dumps(to_jsonable(data), indent=1))
    files.append(out / "pairing_window.json")
    files += _figure(out, data)
    table = _format(rows, meta)
    return {"table": table, "rows": rows, "meta": meta, "files": [str(f) for f in files]}


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _format(rows, meta) -> str:
    lines = [f"pairing window of {meta['synapses']} (top-down: {meta['topdown']}), {meta['pairings']} pairings, "
             f"tier {meta['tier']}; delta_t = t_topdown - t_pre",
             "(timing = dW - unpaired control, per unit of top-down weight)",
             f"{'delta_t (ms)':>12s} {'order':>18s} {'dW (mean)':>12s} {'timing':>12s} {'closed form':>12s} "
             f"{'rate level':>12s}"]
    for r in rows:
        lines.append(f"{r['delta_t_ms']:>12g} {r['order']:>18s} {r['dW']:>12.4g} "
                     f"{r['dW_timing_per_unit_topdown']:>12.4g} {r['predicted_per_unit_topdown']:>12.4g} "
                     f"{r['dW_rate_level']:>12.4g}")
    lines.append(f"unpaired control (no top-down spikes) dW = {meta['dW_unpaired_control']:.4g} (beyond the decay: "
                 f"{meta['dW_unpaired_control_minus_decay_max']:.2g}); postsynaptic spikes: {meta['postsynaptic_spikes']:g} "
                 f"(soma {'held below threshold' if meta['hold_soma'] else 'free to fire'})")
    return "\n".join(lines)


def figure_from_folder(folder: str | Path) -> list[Path]:
    """Redraw the pairing window's figure from its ``pairing_window.json``."""
    path = Path(folder) / "pairing_window.json"
    try:
        data = json.loads(path.read_text())
        data["rows"], data["meta"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{path} is not a pairing window table (rows and meta): rerun `salspike compare "
                          "--protocol pairing_window`") from None
    return _figure(Path(folder), data)


def _figure(out: Path, data: dict) -> list[Path]:
    """Left: the protocol sketch; middle: the change of W beyond the weight decay -c w (which is
    much larger than the timing effect and hid it in the fifth digit of dW), per postsynaptic
    neuron (its sign is its top-down weight's), with the unpaired control and the rate level's
    time-averaged rule; right: the timing window per unit top-down weight with its closed form."""
    rows, meta = data["rows"], data["meta"]
    plt = pyplot()
    dt = np.array([r["delta_t_ms"] for r in rows])
    if "per_post_neuron" not in data:
        raise ConfigError(f"{out / 'pairing_window.json'} was written by an older salspike (no per_post_neuron): "
                          "rerun `salspike compare --protocol pairing_window`")
    sketch = data.get("sketch")
    fig = plt.figure(figsize=(12 if sketch else 9.5, 3.6), constrained_layout=True)
    axes = fig.subplots(1, 3 if sketch else 2, width_ratios=(2.4, 4.75, 4.75) if sketch else None)
    if sketch:
        draw_sketch(axes[0], sketch, title="pairing_window: the circuit")
    a1, a2 = axes[-2:]
    pp = data["per_post_neuron"]
    colours = [OKABE_ITO[i] for i in (5, 6, 3, 1, 7, 2, 0)]
    for n, (neuron, values, rate) in enumerate(zip(pp["post_neurons"], pp["dW_beyond_decay"],
                                                   pp["dW_rate_level_beyond_decay"])):
        colour = colours[n % len(colours)]
        a1.plot(pp["delta_t_ms"], values, "o-", ms=3, lw=0.8, color=colour, label=f"{meta['synapses'].split(':')[0]} "
                f"onto neuron {neuron}" if n < 6 else None)
        a1.axhline(rate, color=colour, ls="--", lw=0.8)
    a1.axhline(meta["dW_unpaired_control_beyond_decay"], color="0.5", ls=":", lw=1,
               label="unpaired control (no top-down spikes)")
    a1.plot([], [], "--", color="0.3", lw=0.8, label="rate level (time-averaged rule)")
    a1.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3), useOffset=False)
    a1.set(xlabel="delta t = t_topdown - t_pre (ms)", ylabel="dW + c w: change beyond the decay (dimensionless)",
           title="Change of W per postsynaptic neuron, decay -c w taken out")
    a1.legend(frameon=False, fontsize=7)
    a2.plot(dt, [r["predicted_per_unit_topdown"] for r in rows], "-", color=OKABE_ITO[1], lw=1.2,
            label="closed form (exp(-lag / tau_s))")
    a2.plot(dt, [r["dW_timing_per_unit_topdown"] for r in rows], "o", color=OKABE_ITO[5], ms=4,
            label="spike level (decay taken out)")
    a2.axvline(0, color="0.7", lw=0.8)
    a2.set(xlabel="delta t = t_topdown - t_pre (ms)", ylabel="dW per unit top-down weight (dimensionless)",
           title=f"Heterosynaptic window (tau_s = {meta['tau_s_ms']:g} ms)")
    a2.legend(frameon=False, fontsize=7)
    stamp(fig, f"{data.get('model', '?')} (spike level)", data.get("seeds"), data.get("commit", ""))
    try:
        return save_figure(fig, out / "pairing_window", FORMATS, dpi=120)
    finally:
        plt.close(fig)
