"""Equation files as data: reading and validating the Brian2 equation strings of the levels.

``models/rate_equations.toml`` declares the populations (their inputs, the protocol hooks, the
snapshot), the nonlinearities, the losses and the four synapse groups (kind: hebbian V/Vbar or
heterosynaptic W/Wbar, summed target, pre and post factors); `load_rate_models` validates it
and returns `RateModels`.  The spike level builds on the same declarations.  The shared helpers
(`fail`, `parse_equations`, `identifiers`, `parse_quantity`) give every equation-file error as a
`ConfigError` naming the file and the table.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Mapping

from ..circuit import GROUPS
from ..errors import ConfigError
from ..resources import bundled_path

__all__ = ["RateModels", "load_rate_models", "default_equations_path", "fail", "parse_equations", "identifiers",
           "parse_quantity", "MODEL_OF_ROLE"]

def default_equations_path() -> Path:
    """The bundled rate-equations file (models/rate_equations.toml, shipped in the package)."""
    return bundled_path("model", "rate_equations")


# --------------------------------------------------------------------------- models

_POP_ROLES = ("input", "upstream", "downstream", "error")
# population role in the layout -> population model in the equations file
MODEL_OF_ROLE = {"input": "input", "upstream": "upstream", "output": "upstream",
                  "downstream": "downstream", "error": "error"}
_KINDS = ("hebbian", "heterosynaptic")
_VARIANTS = {"V": ("v_signal", ("post_dd", "pre_dd"), "post_dd"),
             "Vbar": ("vbar_signal", ("post_du", "pre_du"), "post_du")}


@dataclasses.dataclass(frozen=True)
class RateModels:
    """The validated content of a rate-equations file (see models/rate_equations.toml)."""

    source: str
    method: str
    populations: dict
    nonlinearities: dict
    losses: dict
    synapses: dict
    plasticity: str
    fixed: str

    # -- assembled strings ----------------------------------------------------
    def population_equations(self, role: str, nonlinearity: str | None = None, loss: str | None = None) -> str:
        eqs = self.populations[role]["equations"].strip()
        if role == "upstream":
            eqs += "\n" + self.nonlinearities["upstream"][nonlinearity]
        elif role == "downstream":
            eqs += "\n" + self.nonlinearities["downstream"][nonlinearity]
        elif role == "error":
            eqs += "\n" + self.losses[loss]["equations"].strip()
        return eqs + "\n"

    def post_factor(self, group: str, options: Mapping[str, str]) -> str:
        pf = self.synapses[group]["post_factor"]
        if isinstance(pf, str):
            return pf
        opt, _, _ = _VARIANTS[group]
        return pf[options[opt]]

    def synapse_model(self, group: str, plastic: bool, options: Mapping[str, str] | None = None,
                      post_factor: str | None = None) -> str:
        """Model string of a W/Wbar/V/Vbar group: plastic (plasticity ODE with the rule's factors
        as subexpressions; the post factor chosen by `options` unless given) or fixed (`w : 1`)."""
        spec = self.synapses[group]
        lines = [spec["model"].strip()]
        if plastic:
            pf = post_factor if post_factor is not None else self.post_factor(group, options or {})
            lines += [self.plasticity.strip(), f"pre_factor = {spec['pre_factor']} : 1",
                      f"post_factor = {pf} : 1"]
        else:
            lines.append(self.fixed.strip())
        return "\n".join(lines) + "\n"


def fail(source: str, where: str, msg: str):
    raise ConfigError(f"{source}: [{where}] {msg}")


def identifiers(expr: str) -> set[str]:
    from brian2.utils.stringtools import get_identifiers

    return set(get_identifiers(expr))


def parse_equations(source: str, where: str, text: str):
    from brian2 import Equations
    from brian2.equations.equations import EquationError

    try:
        return Equations(text)
    except (EquationError, ValueError, SyntaxError, TypeError) as err:
        fail(source, where, f"not valid Brian2 equations: {err}\n{text}")


def load_rate_models(path: str | Path | None = None) -> RateModels:
    """Read and validate a rate-equations TOML file (default `default_equations_path()`).

    Checks: required tables and keys; every equation string parses as Brian2 equations; every
    population carries the protocol hooks (``stim(t, i)``, ``clamp_on``, ``clamp_value``) and
    the snapshot ``<activity>_rec``; each synapse group's summed target is an input of its
    postsynaptic population; ``kind = "heterosynaptic"`` rules use an input of the postsynaptic
    neuron that another group delivers (not its own summed variable, not the activity) and
    ``kind = "hebbian"`` rules use the postsynaptic activity (Algorithm 1's variants may use its
    drive); the presynaptic factor is the presynaptic activity.
    """
    path = Path(path) if path is not None else default_equations_path()
    source = str(path)
    if not path.is_file():
        raise ConfigError(f"rate equations file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from None
    for key in ("populations", "nonlinearities", "losses", "synapses", "plasticity", "fixed"):
        if key not in data:
            raise ConfigError(f"{source}: missing table [{key}]")
    method = data.get("method", "euler")
    if method != "euler":
        # the one-step clamp/snapshot terms ((value - x)/dt) and the rate-limit analysis assume
        # forward Euler
        raise ConfigError(f"{source}: method = {method!r}; the rate level uses 'euler'")
    pops = data["populations"]
    for role in _POP_ROLES:
        if role not in pops:
            fail(source, "populations", f"missing population model '{role}' (need {', '.join(_POP_ROLES)})")
        spec = pops[role]
        for key in ("activity", "equations"):
            if key not in spec:
                fail(source, f"populations.{role}", f"missing key '{key}'")
        spec.setdefault("inputs", [])
    nl = data["nonlinearities"]
    for stream, names in (("upstream", ("relu", "identity")), ("downstream", ("identity", "relu_jacobian", "relu"))):
        for n in names:
            if n not in nl.get(stream, {}):
                fail(source, f"nonlinearities.{stream}", f"missing '{n}'")
    for loss, spec in data["losses"].items():
        for key in ("equations", "pred_connect", "pred_model"):
            if key not in spec:
                fail(source, f"losses.{loss}", f"missing key '{key}'")
        if spec["pred_connect"] not in ("one_to_one", "all_to_all"):
            fail(source, f"losses.{loss}", "pred_connect must be one_to_one or all_to_all")
    if "mse" not in data["losses"]:
        fail(source, "losses", "missing 'mse'")
    plasticity = data["plasticity"].get("equations")
    fixed = data["fixed"].get("equations")
    if not plasticity or not fixed:
        fail(source, "plasticity/fixed", "both need an 'equations' string")
    models = RateModels(source, method, pops, nl, data["losses"], data["synapses"], plasticity, fixed)

    # parse every assembled population model and check the hooks
    role_models = {"input": [models.population_equations("input")],
                   "upstream": [models.population_equations("upstream", n) for n in nl["upstream"]],
                   "downstream": [models.population_equations("downstream", n) for n in nl["downstream"]],
                   "error": [models.population_equations("error", loss=l) for l in data["losses"]]}
    declared: dict[str, set] = {}
    for role, texts in role_models.items():
        act = pops[role]["activity"]
        for text in texts:
            eqs = parse_equations(source, f"populations.{role}", text)
            names = set(eqs.names)
            idents = set().union(*[identifiers(e.expr.code) for e in eqs.values() if e.expr is not None])
            missing = [v for v in ("clamp_on", "clamp_value", act, f"{act}_rec") if v not in names]
            if missing:
                fail(source, f"populations.{role}", f"must declare {missing} (protocol hooks / snapshot)")
            if "stim" not in idents:
                fail(source, f"populations.{role}", "must use the extra input stim(t, i) (protocol hook)")
            for inp in pops[role]["inputs"]:
                if inp not in names:
                    fail(source, f"populations.{role}", f"input '{inp}' is listed but not declared")
            declared.setdefault(role, set()).update(names)
    parse_equations(source, "plasticity", plasticity)

    # synapse groups
    role_of = {"upstream": "upstream", "downstream": "downstream"}
    for group in GROUPS:
        if group not in data["synapses"]:
            fail(source, "synapses", f"missing group '{group}'")
        spec = data["synapses"][group]
        where = f"synapses.{group}"
        for key in ("kind", "pre", "post", "summed", "model", "pre_factor", "post_factor"):
            if key not in spec:
                fail(source, where, f"missing key '{key}'")
        if spec["kind"] not in _KINDS:
            fail(source, where, f"kind = {spec['kind']!r}; choose one of {list(_KINDS)}")
        pre, post = role_of.get(spec["pre"]), role_of.get(spec["post"])
        if pre is None or post is None:
            fail(source, where, "pre and post must be 'upstream' or 'downstream'")
        pre_act, post_act = pops[pre]["activity"], pops[post]["activity"]
        post_inputs = set(pops[post]["inputs"])
        if spec["summed"] not in post_inputs:
            fail(source, where, f"summed target '{spec['summed']}' is not an input of the {post} population "
                                 f"({sorted(post_inputs)})")
        if f"{spec['summed']}_post" not in identifiers(spec["model"]) or "(summed)" not in spec["model"]:
            fail(source, where, f"model must write '{spec['summed']}_post' as a (summed) variable")
        if spec["pre_factor"] != f"{pre_act}_pre":
            fail(source, where, f"pre_factor must be the presynaptic activity '{pre_act}_pre'")
        pf = spec["post_factor"]
        if group in _VARIANTS:
            opt, allowed, default = _VARIANTS[group]
            if not isinstance(pf, dict) or set(pf) != set(allowed):
                fail(source, where, f"post_factor must be a table with keys {list(allowed)} (circuit option {opt})")
            default_pf, variants = pf[default], [pf[a] for a in allowed]
        else:
            if not isinstance(pf, str):
                fail(source, where, "post_factor must be a string")
            default_pf, variants = pf, [pf]
        if spec["kind"] == "hebbian":
            if default_pf != f"{post_act}_post":
                fail(source, where, f"a hebbian rule uses the postsynaptic activity '{post_act}_post', "
                                     f"got {default_pf!r}")
            for v in variants:
                name = v[:-5] if v.endswith("_post") else None
                if name is None or name not in declared[post]:
                    fail(source, where, f"post_factor {v!r} is not a variable of the {post} population")
        else:
            for v in variants:
                name = v[:-5] if v.endswith("_post") else None
                if name is None or name not in post_inputs or name == spec["summed"]:
                    fail(source, where, f"a heterosynaptic rule uses an input of the postsynaptic neuron that "
                                         f"another group delivers (one of {sorted(post_inputs - {spec['summed']})}"
                                         f"), got {v!r}")
        for v in variants:
            parse_equations(source, where, models.synapse_model(group, True, post_factor=v))
        parse_equations(source, where, models.synapse_model(group, False))
    return models


_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]+)?\s*$")


def parse_quantity(text: str, source: str = "", where: str = ""):
    """'200 pF' -> 200*pF (a Brian2 quantity); a bare number is dimensionless."""
    import brian2

    m = _QUANTITY.match(str(text))
    if not m:
        fail(source, where, f"{text!r} is not '<number> <unit>' (e.g. '200 pF')")
    value, unit = float(m.group(1)), m.group(2)
    if unit is None:
        return value
    u = getattr(brian2, unit, None)
    if u is None or not isinstance(u, brian2.Quantity):
        fail(source, where, f"unknown unit {unit!r} in {text!r}")
    return value * u
