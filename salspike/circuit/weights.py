"""Weights of a circuit in the cross-level layout: names, initialisation and checks.

Names: ``W{k}`` (k = 0..K-1), ``Vbar{k}`` (k = 0..K-2; Vbar^{K-1} = I is implicit),
``Wbar{k}`` and ``V{k}`` (k = 1..K-1), with the shapes of `Circuit.shapes`.  Every level reads
and writes weights dicts of this layout (``.npz`` files of ``salspike step`` too).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, ShapeError
from .plan import algorithm_plan
from .schema import Circuit


def weight_names(circuit: Circuit) -> list[str]:
    """Every stored weight of the circuit, in `Circuit.shapes` order."""
    return list(circuit.shapes())


def group_of(name: str) -> tuple[str, int]:
    """'Wbar3' -> ('Wbar', 3); a name outside the layout is a KeyError."""
    for g in ("Wbar", "Vbar", "W", "V"):
        if name.startswith(g) and name[len(g):].isdigit():
            return g, int(name[len(g):])
    raise KeyError(name)


def init_weights(circuit: Circuit, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """w ~ N(0, (gain / sqrt(fan_in))^2) per group (gain = ``init.<group>``); with
    ``init.rescale_with_downstream``, V^k ~ N(0, (gain / sqrt(dbar_k))^2) (gain / sqrt(fan_in) divided by
    sqrt(dbar_k / d_k)), so |V^k h^k| ~ gain |h^k| at any downstream ratio; the identity where the
    algorithm fixes V = Vbar = I; Wbar = W^T for bp."""
    rng = np.random.default_rng(circuit["seed"]) if rng is None else rng
    plan = algorithm_plan(circuit)
    out = {}
    for name, shape in circuit.shapes().items():
        group, _ = group_of(name)
        if plan.identity_interstream and group in ("V", "Vbar"):
            w = np.eye(*shape)
        else:
            fan = shape[0] if group == "V" and circuit["init.rescale_with_downstream"] else shape[1]
            w = rng.standard_normal(shape) * (circuit[f"init.{group}"] / np.sqrt(fan))
        out[name] = w.astype(circuit.dtype)
    if plan.wbar_mode == "tied":
        for k in range(1, circuit.n_layers):
            out[f"Wbar{k}"] = out[f"W{k}"].T.copy()
    return out


def check_weights(circuit: Circuit, weights: dict[str, np.ndarray], source: str = "weights") -> None:
    """Every expected key present with its shape and finite values (Vbar{K-1} may be given as
    the identity; activity arrays ``h{k}``/``hbar{k}`` are ignored).  ShapeError otherwise."""
    shapes = circuit.shapes()
    for name, shape in shapes.items():
        if name not in weights:
            raise ShapeError(f"{source}: missing key '{name}' (expected shape {shape}); expected keys: "
                             f"{', '.join(shapes)}")
        w = np.asarray(weights[name])
        if tuple(w.shape) != tuple(shape):
            raise ShapeError(f"{source}: '{name}' has shape {tuple(w.shape)}, expected {shape} "
                             f"(widths d = {circuit.widths}, dbar = {circuit.downstream_widths[1:]})")
        if not np.issubdtype(w.dtype, np.number) or not np.all(np.isfinite(w)):
            raise ShapeError(f"{source}: '{name}' holds NaN, inf or non-numbers; start from finite weights "
                             "(e.g. a checkpoint.npz of an earlier epoch)")
    _check_identity_interstream(circuit, weights, source)
    K = circuit.n_layers
    for name in weights:
        if name in shapes or name.startswith(("h", "hbar")):
            continue
        if name == f"Vbar{K - 1}":
            if not np.array_equal(weights[name], np.eye(*weights[name].shape)):
                raise ShapeError(f"{source}: '{name}' is the fixed output identity; it must be I or omitted")
            continue
        raise ShapeError(f"{source}: unexpected key '{name}'; expected keys: {', '.join(shapes)}")


def _check_identity_interstream(circuit: Circuit, weights: dict, source: str) -> None:
    """Baselines (bp, fa, kp, wm) fix V = Vbar = I: loaded weights whose V or Vbar is not exactly the
    identity would silently change what W learns (W's update is Vbar hbar), so they are refused."""
    if not algorithm_plan(circuit).identity_interstream:
        return
    for name, shape in circuit.shapes().items():
        if group_of(name)[0] in ("V", "Vbar") and not np.array_equal(np.asarray(weights[name]), np.eye(*shape)):
            raise ConfigError(f"{source}: algorithm '{circuit['algorithm']}' fixes V = Vbar = I but '{name}' is not "
                              "the identity; load these weights with algorithm = \"sal\", or give identity V and "
                              "Vbar (as a baseline run writes them)")


def check_trials(circuit: Circuit, x, y, source: str = "inputs") -> tuple[np.ndarray, np.ndarray]:
    """Inputs x (n, d_0) and targets y (n, d_K) of n >= 1 trials (one trial = one input row),
    finite, as float64 arrays; ShapeError naming the problem otherwise."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = circuit.widths
    if x.ndim != 2 or x.shape[1] != d[0]:
        raise ShapeError(f"{source}: inputs x have shape {x.shape}, expected (n, {d[0]})")
    if y.shape != (x.shape[0], d[-1]):
        raise ShapeError(f"{source}: targets y have shape {y.shape}, expected ({x.shape[0]}, {d[-1]})")
    if x.shape[0] == 0:
        raise ShapeError(f"{source}: 0 trials (rows); give at least one input row")
    for key, arr in (("x", x), ("y", y)):
        if not np.all(np.isfinite(arr)):
            bad = int(np.sum(~np.isfinite(arr)))
            raise ShapeError(f"{source}: {key} holds {bad} NaN/inf values; clean the data first")
    return x, y
