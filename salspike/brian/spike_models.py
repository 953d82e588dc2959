"""The closed-loop spiking network's equations as data: ``models/spike_equations.toml``.

`load_spike_models` reads and validates the file (every population's equations parse, every
synapse group names a target current and its rule's postsynaptic factor per variant) and
returns `SpikeModels`, which fills the placeholders (``{D_d}``, ``{loss}``) for one circuit.
Errors are `ConfigError` naming the file and the table.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Mapping

from ..errors import ConfigError
from ..resources import bundled_path
from .equations import fail, parse_equations

__all__ = ["SpikeModels", "load_spike_models", "default_spike_equations_path", "ROLES"]

ROLES = ("input", "upstream", "output", "downstream", "error")
_GROUP_OPTION = {"V": "v_signal", "Vbar": "vbar_signal"}


def default_spike_equations_path() -> Path:
    """The bundled spike-equations file (models/spike_equations.toml, shipped in the package)."""
    return bundled_path("model", "spike_equations")


@dataclasses.dataclass(frozen=True)
class SpikeModels:
    """The validated content of a spike-equations file."""

    source: str
    method: str
    populations: dict
    downstream_nonlinearity: dict
    losses: dict
    synapses: dict
    tiers: dict

    def neuron(self, role: str, d_d: str = "identity", loss: str = "mse", tier: str = "poisson") -> dict:
        """Equations, threshold, reset, refractoriness and signedness of a population role in a
        tier, placeholders filled (tier two_compartment changes the upstream hidden neurons only)."""
        p = self.populations[f"{role}_{tier}" if f"{role}_{tier}" in self.populations else role]
        eqs = p["equations"].replace("{D_d}", self.downstream_nonlinearity[d_d])
        extra = ""
        if role == "error":
            eqs = eqs.replace("{loss}", self.losses[loss]["error"])
            extra = self.losses[loss].get("extra", "")
        return {"equations": eqs.strip() + ("\n" + extra if extra else "") + "\n", "threshold": p["threshold"],
                "reset": p["reset"], "signed": bool(p["signed"]), "refractory": p.get("refractory"),
                "method": p.get("method")}

    def parameters(self, tier: str) -> dict:
        """The tier's constants as Brian2 quantities (the namespace of its neurons)."""
        from .equations import parse_quantity

        raw = self.tiers.get(tier, {}).get("parameters", {})
        return {k: parse_quantity(v, self.source, f"tiers.{tier}.parameters.{k}") for k, v in raw.items()}

    def calibration(self, tier: str) -> dict:
        """The calibration grid of a tier ([tiers.<tier>.calibration])."""
        from .equations import parse_quantity

        cal = self.tiers.get(tier, {}).get("calibration")
        if cal is None:
            raise ConfigError(f"{self.source}: tier {tier!r} has no [tiers.{tier}.calibration] table")
        return {"mu": [float(v) for v in cal["mu"]], "sigma": [float(v) for v in cal["sigma"]],
                "t_measure": parse_quantity(cal["t_measure"], self.source, "t_measure"),
                "t_warmup": parse_quantity(cal["t_warmup"], self.source, "t_warmup")}

    def factor(self, group: str, options: Mapping[str, str]) -> str:
        """The postsynaptic quantity group's tag samples at each presynaptic spike."""
        f = self.synapses[group]["factor"]
        return f["default"] if "default" in f else f[options[_GROUP_OPTION[group]]]

    def target(self, group: str) -> str:
        return self.synapses[group]["target"]


def load_spike_models(path: str | Path | None = None) -> SpikeModels:
    """Read and validate a spike-equations file (default: the bundled one)."""
    path = Path(path) if path is not None else default_spike_equations_path()
    source = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"spike equations file not found: {source}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML ({err})") from None
    for key in ("method", "populations", "downstream_nonlinearity", "loss", "synapses"):
        if key not in data:
            fail(source, "top level", f"missing key {key!r}")
    pops = data["populations"]
    for role in ROLES:
        if role not in pops:
            fail(source, f"populations.{role}", "missing")
        for key in ("equations", "threshold", "reset", "signed"):
            if key not in pops[role]:
                fail(source, f"populations.{role}", f"missing key {key!r}")
    syn = data["synapses"]
    for key in ("model", "fixed_model", "consolidate"):
        if key not in syn:
            fail(source, "synapses", f"missing key {key!r}")
    for group in ("W", "Wbar", "V", "Vbar"):
        g = syn.get(group)
        if not isinstance(g, dict) or "target" not in g or "factor" not in g:
            fail(source, f"synapses.{group}", "needs 'target' (the current it drives) and 'factor' (per variant)")
    models = SpikeModels(source=source, method=str(data["method"]), populations=pops,
                         downstream_nonlinearity=dict(data["downstream_nonlinearity"]), losses=dict(data["loss"]),
                         synapses=syn, tiers=dict(data.get("tiers", {})))
    for role in ROLES:
        for d_d in models.downstream_nonlinearity:
            for loss in models.losses:
                for tier in ("poisson", *models.tiers):
                    parse_equations(source, f"populations.{role}", models.neuron(role, d_d, loss, tier)["equations"])
    for tier in models.tiers:
        models.parameters(tier)
    parse_equations(source, "synapses.model", syn["model"])
    return models
