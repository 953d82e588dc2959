"""The declarative circuit description shared by every level (matrix, rate, spike).

A `Circuit` is read from a TOML model file under ``models/`` and validated against
`SCHEMA`: an unknown key, a wrong type, a value outside its allowed set or an impossible
shape is a `ConfigError` naming the file, the key and what is allowed.

Index conventions (see docs/math.md): upstream layers h^0 = x (width d_0) ... h^K = y_hat,
downstream layers hbar^1 ... hbar^K with widths dbar_1 ... dbar_K (dbar_K = d_K).
Shapes: W^k: d_{k+1} x d_k (k = 0..K-1); Wbar^k: dbar_k x dbar_{k+1} (k = 1..K-1);
V^k: dbar_k x d_k (k = 1..K-1); Vbar^k: d_{k+1} x dbar_{k+1} (k = 0..K-1, Vbar^{K-1} = I fixed).
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

GROUPS = ("W", "Wbar", "V", "Vbar")
ALGORITHMS = ("sal", "bp", "fa", "kp", "wm")
RULES = ("equations", "algorithm1")
#: baselines that train Wbar at W's rate (eta.Wbar = eta.W): Kolen-Pollack and weight mirrors
ONE_RATE_ALGORITHMS = ("kp", "wm")

# key -> (type(s), allowed values or None, default, one-line doc).  Dotted keys are tables.
_F = (int, float)
SCHEMA: dict[str, tuple[Any, Any, Any, str]] = {
    "name": (str, None, "circuit", "a label for the circuit"),
    "description": (str, None, "", "free text"),
    "hidden": (list, None, None, "upstream hidden widths d_1..d_{K-1} (required)"),
    "input_width": ((int, str), None, "auto", "d_0, or 'auto' to take it from the dataset"),
    "output_width": ((int, str), None, "auto", "d_K, or 'auto' to take it from the dataset"),
    "downstream_ratio": (_F, None, 1.0, "dbar_k = round(ratio * d_k) for hidden layers"),
    "downstream_widths": ((list, type(None)), None, None,
                          "explicit dbar_1..dbar_{K-1} (overrides downstream_ratio)"),
    "upstream_nonlinearity": (str, ("relu", "identity"), "relu", "D_u of hidden layers (output is linear)"),
    "downstream_nonlinearity": (str, ("identity", "relu_jacobian", "relu"), "identity",
                                "D_d: identity (paper default), relu_jacobian = diag(1[V h > 0]) (Eq. 4), "
                                "relu = diag(1[Wbar hbar > 0])"),
    "loss": (str, ("mse", "cross_entropy"), "mse", "F; hbar^K = -dF/dy_hat"),
    "rule": (str, RULES, "equations", "Eqs. 5-8 of the paper, or its Algorithm 1 (appendix D)"),
    "v_signal": (str, ("auto", "post_dd", "pre_dd"), "auto",
                 "V learns from hbar^k (post_dd, Eq. 6) or Wbar hbar^{k+1} (pre_dd, Alg. 1); auto follows rule"),
    "vbar_signal": (str, ("auto", "post_du", "pre_du"), "auto",
                    "Vbar learns from h^{k+1} (post_du, Eq. 8) or W h^k (pre_du, Alg. 1); auto follows rule"),
    "decay": (str, ("auto", "absolute", "eta_scaled"), "auto",
              "weight decay -gamma w (absolute, Eqs. 5-8) or -eta gamma w (eta_scaled, Alg. 1); auto follows rule"),
    "algorithm": (str, ALGORITHMS, "sal", "sal, or a baseline as a setting of the same circuit (Sec. 4, Table 2)"),
    "plastic": (list, None, list(GROUPS), "which of W, Wbar, V, Vbar learn (Fig. 4 ablations)"),
    "gamma": (_F, None, 0.0, "regularisation strength gamma (R_i = weight decay)"),
    "interstream_rule": (str, ("hebbian", "oja"), "hebbian",
                         "V, Vbar rules: hebbian (Eqs. 6, 8, paper) or oja: each adds -eta <post^2> w per "
                         "postsynaptic row, Oja's norm-bounding form (extension; matrix level only)"),
    "decay_groups": (list, None, list(GROUPS), "groups whose weights decay (-gamma w): all four as in Eqs. 5-8 "
                     "(paper), or e.g. [\"W\", \"Wbar\"] to decay W and Wbar but not V, Vbar as in Kolen-Pollack "
                     "(extension)"),
    "eta.W": (_F, None, 0.01, "learning rate of W"),
    "eta.Wbar": (_F, None, 0.0001, "learning rate of Wbar"),
    "eta.V": (_F, None, 0.0001, "learning rate of V"),
    "eta.Vbar": (_F, None, 0.0001, "learning rate of Vbar"),
    "init.W": (_F, None, 1.4142135623730951, "W^k ~ N(0, (gain/sqrt(fan_in))^2); gain"),
    "init.Wbar": (_F, None, 1.0, "Wbar^k init gain"),
    "init.V": (_F, None, 1.0, "V^k init gain"),
    "init.Vbar": (_F, None, 1.0, "Vbar^k init gain"),
    "init.rescale_with_downstream": (bool, None, False, "divide V^k's gain by sqrt(dbar_k / d_k), so that |V^k h^k| "
                                     "does not grow with the downstream ratio (extension; the paper states no "
                                     "initialisation)"),
    "modulation_alpha": (_F, None, 0.0, "short-term modulation h^k <- h^k + alpha Vbar^{k-1} hbar^k (Sec. 2.3)"),
    "wm.noise_std": (_F, None, 1.0, "weight mirror: std of the noise injected in mirror mode"),
    "wm.batch": (int, None, 64, "weight mirror: noise samples per mirror step"),
    "seed": (int, None, 0, "seed of initial weights, data order and noise"),
    "dtype": (str, ("float32", "float64"), "float64", "floating-point type of the matrix level"),
    "divergence_limit": (_F, None, 1e6, "a weight norm above this (or NaN/inf) stops the run"),
    "training.batch_size": (int, None, 32, "mini-batch size (updates use the batch mean)"),
    "training.epochs": (int, None, 30, "epochs"),
    "training.online": (bool, None, False, "one update per sample instead of per batch mean"),
    "training.eval_batch": (int, None, 256, "probe batch for the per-layer alignment metrics"),
    "training.blas_threads": (int, None, 0, "BLAS threads, at most the available cores; 0 = auto: 1 unless "
                              "a step's largest product (batch x widest weight) reaches 1e9 multiply-adds, "
                              "then all available cores (threads made batch-32 steps slower, "
                              "docs/training.md)"),
    # rate level (Brian2): time constants and phase lengths, in ms
    "rate.tau_up": (_F, None, 1.0, "ms, time constant of upstream rate neurons"),
    "rate.tau_down": (_F, None, 1.0, "ms, time constant of downstream rate neurons"),
    "rate.t_forward": (_F, None, 30.0, "ms, forward settling phase"),
    "rate.t_feedback": (_F, None, 30.0, "ms, feedback settling phase"),
    "rate.t_plasticity": (_F, None, 10.0, "ms, plasticity window"),
    "rate.dt": (_F, None, 0.1, "ms, integration step"),
    "rate.plasticity": (str, ("one_shot", "continuous"), "one_shot",
                        "one update at the end of the window, or plasticity ODEs over the window"),
    "rate.device": (str, ("runtime", "cpp_standalone", "cuda_standalone"), "runtime", "Brian2 device"),
    # spike level
    "spike.tier": (str, ("poisson", "two_compartment"), "poisson",
                   "neuron tier of the closed-loop spiking level: poisson = linear-nonlinear-Poisson; "
                   "two_compartment = LIF soma with adaptation and an apical dendrite for the hidden neurons"),
    "spike.calibration": ((list, type(None)), None, None,
                          "two_compartment transfer function: rows [mu, sigma, rate_Hz, filtered_var, power0] on a "
                          "grid (written by `salspike calibrate`; the last two: the output train's statistics)"),
    "spike.rate_scale": (_F, None, 20.0, "Hz per unit of activity (s: a neuron at r Hz carries a = r / s)"),
    "spike.tau_s": (_F, None, 20.0, "ms, time constant of the synaptic currents (LNP input filter)"),
    "spike.tau_readout": (_F, None, 200.0, "ms, time constant of the error module's trace of the output spikes (long: see docs/spike_network.md, Learning)"),
    "spike.tau_trace": (_F, None, 20.0, "ms, time constant of the spike traces read by the hebbian V and Vbar rules"),
    "spike.t_settle": (_F, None, 500.0, "ms, settling time at the start of each trial (no plasticity, no read-out)"),
    "spike.t_window": (_F, None, 500.0, "ms, plasticity and read-out window after the settling time"),
    "spike.delay": (_F, None, 0.0, "ms, synaptic delay of every synapse (0: effect in the same step)"),
    "spike.dt": (_F, None, 0.25, "ms, integration step of the spiking network"),
    "spike.matched_transfer": (str, ("relu", "lnp", "calibrated"), "relu",
                               "matrix level: hidden transfer ReLU (paper), the mean rate of the spike "
                               "level's LNP neurons mu Phi(mu/sigma) + sigma phi(mu/sigma), or the two_compartment "
                               "neurons' calibrated table spike.calibration (docs/spike_network.md)"),
    "spike.matched_count_noise": (bool, None, False,
                                  "matrix level with matched_transfer = lnp: add to every activity the "
                                  "spike-count noise of the spike level's window (variance |a| / (s T))"),
}

_TABLES = sorted({k.split(".")[0] for k in SCHEMA if "." in k})

#: Units that a key's meaning names first ("ms, time constant ..."); "" = dimensionless or none.
_UNITS = ("ms", "Hz")


def unit_of(key: str) -> str:
    """The unit of a model key ("" when dimensionless), read from its documented meaning."""
    doc = SCHEMA[key][3]
    if doc.startswith("Hz per unit"):
        return "Hz/unit"
    head = doc.split(",")[0].strip()
    return head if head in _UNITS else ""


def describe(circuit: "Circuit") -> list[tuple[str, Any, Any, str, str]]:
    """(key, value, default, unit, meaning) of every key of the schema, for `salspike model show`."""
    rows = []
    for key, (_, allowed, default, doc) in SCHEMA.items():
        unit = unit_of(key)
        meaning = doc[len(unit) + 2:] if unit and doc.startswith(unit + ",") else doc
        if unit == "Hz/unit":
            meaning = "spike rate per unit of activity"
        if allowed is not None:
            meaning += f" (one of {', '.join(map(str, allowed))})"
        rows.append((key, circuit.params[key], default, unit, meaning))
    return rows


def flatten_tables(d: dict, prefix: str = "") -> dict[str, Any]:
    """Nested TOML tables as one dict with dotted keys ({"eta": {"W": 1}} -> {"eta.W": 1});
    lists are kept whole."""
    out = {}
    for key, value in d.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_tables(value, full + "."))
        else:
            out[full] = value
    return out


def _check_type(key: str, value: Any, source: str) -> Any:
    types, allowed, _, doc = SCHEMA[key]
    if not isinstance(types, tuple):
        types = (types,)
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if ok and float in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not ok:
        names = "/".join(t.__name__ for t in types)
        raise ConfigError(f"{source}: key '{key}' must be {names}, got {value!r} ({doc})")
    if allowed is not None and value not in allowed:
        raise ConfigError(f"{source}: key '{key}' = {value!r} is not allowed; choose one of {list(allowed)}")
    return value


def did_you_mean(key: str, known=None) -> str:
    """The hint " Did you mean X, Y?" for the closest of ``known`` names (default: the model
    keys); empty when none is close."""
    import difflib

    close = difflib.get_close_matches(key, list(SCHEMA if known is None else known), n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""


def read_toml_file(path: str | Path, kind: str, example: str) -> dict:
    """Parse a TOML file; a missing or invalid file is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{kind} file {path} does not exist; {kind} files live in {Path(example).parent}/ "
                          f"(e.g. {example})")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def parse_value(text: str) -> Any:
    """Parse the value part of ``--set key=value`` as a TOML value (bare words are strings)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


@dataclasses.dataclass(frozen=True)
class Circuit:
    """A validated, resolved circuit.  `params` maps every SCHEMA key to its value; `explicit` holds
    the keys that a model file, a dict or an override set (the rest are schema defaults), so that a
    setting the chosen algorithm would override can be refused instead of ignored."""

    params: dict[str, Any]
    source: str = "<defaults>"
    explicit: frozenset = frozenset()

    # ----- construction -------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> "Circuit":
        flat = flatten_tables(data)
        params = {k: copy.deepcopy(v[2]) for k, v in SCHEMA.items()}
        for key, value in flat.items():
            if key not in SCHEMA:
                raise ConfigError(f"{source}: unknown key '{key}'.{did_you_mean(key)} "
                                  "`salspike model show` lists every key")
            params[key] = _check_type(key, value, source)
        return cls._validated(params, source, frozenset(flat))

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "Circuit":
        """Read a model file: a path, or the name of a bundled model (``"paper_mlp"``,
        ``"small_circuit"``; `salspike.resources.bundled` lists them).  ``overrides`` are model
        keys with their values, dotted for tables (``{"hidden": [100], "eta.W": 0.01}``), as
        ``--set`` takes them; `with_overrides` applies them to a loaded circuit."""
        from ..resources import resolve

        path = resolve("model", path)
        data = read_toml_file(path, "model", "models/paper_mlp.toml")
        circuit = cls.from_dict(data, source=str(path))
        return circuit.with_overrides(overrides or {}) if overrides else circuit

    def with_overrides(self, overrides: dict[str, Any], source: str = "--set") -> "Circuit":
        params = dict(self.params)
        for key, value in overrides.items():
            if key not in SCHEMA:
                raise ConfigError(f"{source}: unknown key '{key}'.{did_you_mean(key)} "
                                  "`salspike model show` lists every key")
            params[key] = _check_type(key, value, source)
        return self._validated(params, f"{self.source} with {source}", self.explicit | frozenset(overrides))

    def with_io_widths(self, input_width: int, output_width: int) -> "Circuit":
        """Fill 'auto' input/output widths (from a dataset); a fixed width must match."""
        over = {}
        for key, value in (("input_width", input_width), ("output_width", output_width)):
            current = self.params[key]
            if current == "auto":
                over[key] = int(value)
            elif current != value:
                raise ConfigError(f"{self.source}: {key} = {current} but the data has width {value}; "
                                  f"set {key} = \"auto\" or use matching data")
        return self.with_overrides(over, "dataset") if over else self

    @classmethod
    def _validated(cls, params: dict, source: str, explicit: frozenset = frozenset()) -> "Circuit":
        hidden = params["hidden"]
        if hidden is None:
            raise ConfigError(f"{source}: key 'hidden' is required (upstream hidden widths, e.g. [200, 200, 200])")
        if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
            raise ConfigError(f"{source}: 'hidden' must be a list of positive integers, got {hidden!r}")
        for key in ("input_width", "output_width"):
            v = params[key]
            if isinstance(v, str) and v != "auto":
                raise ConfigError(f"{source}: key '{key}' must be a positive integer or \"auto\", got {v!r}")
            if isinstance(v, int) and v <= 0:
                raise ConfigError(f"{source}: key '{key}' must be positive, got {v}")
        dw = params["downstream_widths"]
        if dw is not None:
            if len(dw) != len(hidden) or not all(isinstance(w, int) and w > 0 for w in dw):
                raise ConfigError(f"{source}: 'downstream_widths' must list {len(hidden)} positive integers "
                                  f"(one per hidden layer), got {dw!r}")
        if params["downstream_ratio"] <= 0:
            raise ConfigError(f"{source}: 'downstream_ratio' must be > 0, got {params['downstream_ratio']}")
        for key in ("plastic", "decay_groups"):
            bad = [g for g in params[key] if g not in GROUPS]
            if bad:
                raise ConfigError(f"{source}: '{key}' has unknown groups {bad}; allowed: {list(GROUPS)}")
        for key in ("gamma", "eta.W", "eta.Wbar", "eta.V", "eta.Vbar", "wm.noise_std"):
            if params[key] < 0:
                raise ConfigError(f"{source}: '{key}' must be >= 0, got {params[key]}")
        for key in ("training.batch_size", "training.epochs", "wm.batch"):
            if params[key] <= 0:
                raise ConfigError(f"{source}: '{key}' must be positive, got {params[key]}")
        for key in ("rate.tau_up", "rate.tau_down", "rate.dt", "rate.t_forward", "rate.t_feedback",
                    "rate.t_plasticity", "spike.t_window", "spike.tau_trace", "spike.tau_s",
                    "spike.tau_readout", "spike.dt"):
            if params[key] <= 0:
                raise ConfigError(f"{source}: '{key}' must be > 0 ms, got {params[key]}")
        for key in ("spike.t_settle", "spike.delay"):
            if params[key] < 0:
                raise ConfigError(f"{source}: '{key}' must be >= 0 ms, got {params[key]}")
        if params["spike.rate_scale"] <= 0:
            raise ConfigError(f"{source}: 'spike.rate_scale' must be > 0 Hz per unit, got {params['spike.rate_scale']}")
        if params["spike.calibration"] is not None:  # a malformed table fails here, not mid-run
            from .functions import CalibratedTransfer

            CalibratedTransfer(params["spike.calibration"], params["spike.rate_scale"], f"{source}: spike.calibration")
        needs_square = params["algorithm"] != "sal"
        _refuse_ignored_wbar_rate(params, explicit, source)
        circuit = cls(params=params, source=source, explicit=explicit)
        if needs_square and circuit._dbar_hidden() != list(hidden):
            raise ConfigError(f"{source}: algorithm '{params['algorithm']}' fixes V = Vbar = I, which needs "
                              "downstream widths equal to upstream widths; set downstream_ratio = 1")
        return circuit

    # ----- derived quantities ---------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def _dbar_hidden(self) -> list[int]:
        if self.params["downstream_widths"] is not None:
            return list(self.params["downstream_widths"])
        return [max(1, int(round(self.params["downstream_ratio"] * h))) for h in self.params["hidden"]]

    @property
    def resolved(self) -> bool:
        return self.params["input_width"] != "auto" and self.params["output_width"] != "auto"

    def _need_resolved(self):
        if not self.resolved:
            raise ConfigError(f"{self.source}: input/output widths are 'auto'; resolve them from data "
                              "(Circuit.with_io_widths) or set input_width and output_width")

    @property
    def widths(self) -> list[int]:
        """Upstream widths d_0..d_K."""
        self._need_resolved()
        return [self.params["input_width"], *self.params["hidden"], self.params["output_width"]]

    @property
    def downstream_widths(self) -> list[int | None]:
        """Downstream widths indexed like the upstream: [None, dbar_1, ..., dbar_K] (no hbar^0)."""
        self._need_resolved()
        return [None, *self._dbar_hidden(), self.params["output_width"]]

    @property
    def n_layers(self) -> int:
        """K, the number of weight layers W^0..W^{K-1}."""
        return len(self.params["hidden"]) + 1

    @property
    def eta(self) -> dict[str, float]:
        return {g: self.params[f"eta.{g}"] for g in GROUPS}

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.params["dtype"])

    @property
    def rule_options(self) -> dict[str, str]:
        """The three places where Algorithm 1 differs from Eqs. 5-8, resolved from `rule`."""
        eq = self.params["rule"] == "equations"
        defaults = {"v_signal": "post_dd" if eq else "pre_dd",
                    "vbar_signal": "post_du" if eq else "pre_du",
                    "decay": "absolute" if eq else "eta_scaled"}
        return {k: (defaults[k] if self.params[k] == "auto" else self.params[k]) for k in defaults}

    def shapes(self) -> dict[str, tuple[int, int]]:
        """Weight name -> shape, for every stored weight (Vbar^{K-1} = I is not stored)."""
        d, db, K = self.widths, self.downstream_widths, self.n_layers
        shapes = {}
        for k in range(K):
            shapes[f"W{k}"] = (d[k + 1], d[k])
            if k < K - 1:
                shapes[f"Vbar{k}"] = (d[k + 1], db[k + 1])
            if k >= 1:
                shapes[f"Wbar{k}"] = (db[k], db[k + 1])
                shapes[f"V{k}"] = (db[k], d[k])
        return shapes

    def to_dict(self) -> dict:
        """Nested dict (TOML layout) of every resolved parameter; for kp and wm, eta.Wbar is the
        rate they use (eta.W), so a written model file reads back as the same circuit."""
        out: dict[str, Any] = {}
        params = dict(self.params)
        if params["algorithm"] in ONE_RATE_ALGORITHMS:
            params["eta.Wbar"] = params["eta.W"]
        for key, value in params.items():
            node = out
            *tables, leaf = key.split(".")
            for t in tables:
                node = node.setdefault(t, {})
            node[leaf] = value
        return out

    def to_toml(self) -> str:
        return dump_toml(self.to_dict())

    @classmethod
    def from_shapes(cls, shapes: dict[str, tuple[int, ...]], overrides: dict | None = None) -> "Circuit":
        """Infer widths from a weights file (``W{k}``, ``Wbar{k}``) when no model file is given."""
        K = 0
        while f"W{K}" in shapes:
            K += 1
        if K == 0:
            raise ConfigError("weights file has no 'W0': cannot infer the architecture; pass --model")
        d = [shapes["W0"][1]] + [shapes[f"W{k}"][0] for k in range(K)]
        dbar = []
        for k in range(1, K):
            if f"V{k}" in shapes:
                dbar.append(int(shapes[f"V{k}"][0]))
            elif f"Wbar{k}" in shapes:
                dbar.append(int(shapes[f"Wbar{k}"][0]))
            else:
                dbar.append(d[k])
        data = {"hidden": [int(x) for x in d[1:-1]], "input_width": int(d[0]), "output_width": int(d[-1]),
                "downstream_widths": dbar}
        circuit = cls.from_dict(data, source="<weights file>")
        return circuit.with_overrides(overrides) if overrides else circuit


def _refuse_ignored_wbar_rate(params: dict, explicit: frozenset, source: str) -> None:
    """KP and WM train Wbar at eta.W (one rate, Akrout et al. 2019): an explicitly set eta.Wbar that
    differs would be silently replaced, so it is a ConfigError naming the fix."""
    algo = params["algorithm"]
    if algo in ONE_RATE_ALGORITHMS and "eta.Wbar" in explicit and params["eta.Wbar"] != params["eta.W"]:
        raise ConfigError(f"{source}: algorithm '{algo}' trains Wbar at eta.W = {params['eta.W']:g}, but eta.Wbar = "
                          f"{params['eta.Wbar']:g} is set explicitly; set eta.Wbar = {params['eta.W']:g} "
                          f"(--set eta.Wbar={params['eta.W']:g}) or leave it out of the model")


def dump_toml(data: dict, _prefix: str = "") -> str:
    """Minimal TOML writer for the flat-or-one-level tables of a model file."""
    def fmt(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        if isinstance(v, float):
            return repr(v)
        return str(v)

    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {fmt(value)}")
    for key, value in tables:
        lines.append(f"\n[{_prefix}{key}]")
        lines.extend(f"{k} = {fmt(v)}" for k, v in value.items() if v is not None)
    return "\n".join(lines) + "\n"


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Turn ``["eta.W=0.1", "loss=mse"]`` into a dict; a malformed item is a ConfigError."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set eta.W=0.01")
        key, text = item.split("=", 1)
        out[key.strip()] = parse_value(text.strip())
    return out
