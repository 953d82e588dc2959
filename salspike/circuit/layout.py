"""Populations and synapse groups of a circuit, named in the cross-level vocabulary.

Populations ``h0..hK`` upstream (h0 the input, hK the output) and ``hbar1..hbarK`` downstream
(hbarK the error module, -dF/dy_hat); synapse groups ``W{k}``, ``Wbar{k}``, ``V{k}``, ``Vbar{k}``
and ``pred`` (the error module's view of the output).  Every level, the hook API and the
protocols address the circuit through these names.
"""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError
from .schema import GROUPS, Circuit

__all__ = ["Population", "Projection", "Layout", "circuit_layout"]


@dataclasses.dataclass(frozen=True)
class Population:
    """A population of the circuit: ``h{k}`` (upstream) or ``hbar{k}`` (downstream)."""

    name: str
    stream: str  # "up" or "down"
    layer: int
    width: int
    role: str  # "input", "upstream", "output", "downstream", "error"

    @property
    def brian_name(self) -> str:
        return f"pop_{self.name}"


@dataclasses.dataclass(frozen=True)
class Projection:
    """A synapse group: weight matrix ``shape = (n_post, n_pre)`` in the cross-level layout."""

    name: str  # "W0", "Wbar1", ..., "pred"
    group: str  # "W", "Wbar", "V", "Vbar", "pred"
    layer: int
    pre: str
    post: str
    shape: tuple[int, int]
    target: str  # the summed variable it writes on `post`
    connect: str  # "dense" or "one_to_one" (or "all_to_all" for pred with a loss needing it)
    stored: bool  # part of the weights dict (False: fixed identity / readout)

    @property
    def brian_name(self) -> str:
        return f"syn_{self.name}"


@dataclasses.dataclass(frozen=True)
class Layout:
    K: int
    populations: dict[str, Population]
    projections: dict[str, Projection]

    def population(self, name: str) -> Population:
        if name not in self.populations:
            raise ConfigError(f"unknown population {name!r}; populations: {', '.join(self.populations)} "
                              "(h{k} upstream, hbar{k} downstream, hbarK is the error module)")
        return self.populations[name]

    def projection(self, name: str) -> Projection:
        if name not in self.projections:
            raise ConfigError(f"unknown synapse group {name!r}; groups: {', '.join(self.projections)}")
        return self.projections[name]

    def groups_named(self, name: str) -> list[Projection]:
        """'W' -> every W{k}; 'W1' -> [W1]; the same for Wbar, V, Vbar."""
        if name in GROUPS:
            return [p for p in self.projections.values() if p.group == name]
        return [self.projection(name)]


def circuit_layout(circuit: Circuit, pred_connect: str = "one_to_one") -> Layout:
    """Populations and synapse groups of a circuit (shapes as in `Circuit.shapes`).

    Upstream h0 (input), h1..h{K-1} (hidden), hK (output); downstream hbar1..hbar{K-1}, hbarK
    (the error module, -dF/dy_hat).  W{k}: h{k} -> h{k+1} (I_ff), Vbar{k}: hbar{k+1} -> h{k+1}
    (I_apical; Vbar{K-1} the fixed identity from the error module), Wbar{k}: hbar{k+1} ->
    hbar{k} (I_fb), V{k}: h{k} -> hbar{k} (I_lat), pred: hK -> hbarK (I_pred, the error
    module's view of the output).
    """
    d, db, K = circuit.widths, circuit.downstream_widths, circuit.n_layers
    pops: dict[str, Population] = {}
    for k in range(K + 1):
        role = "input" if k == 0 else ("output" if k == K else "upstream")
        pops[f"h{k}"] = Population(f"h{k}", "up", k, d[k], role)
    for k in range(1, K + 1):
        pops[f"hbar{k}"] = Population(f"hbar{k}", "down", k, db[k], "error" if k == K else "downstream")
    proj: dict[str, Projection] = {}
    for k in range(K):
        proj[f"W{k}"] = Projection(f"W{k}", "W", k, f"h{k}", f"h{k + 1}", (d[k + 1], d[k]), "I_ff", "dense", True)
    for k in range(1, K):
        proj[f"Wbar{k}"] = Projection(f"Wbar{k}", "Wbar", k, f"hbar{k + 1}", f"hbar{k}", (db[k], db[k + 1]),
                                      "I_fb", "dense", True)
        proj[f"V{k}"] = Projection(f"V{k}", "V", k, f"h{k}", f"hbar{k}", (db[k], d[k]), "I_lat", "dense", True)
    for k in range(K):
        fixed = k == K - 1
        proj[f"Vbar{k}"] = Projection(f"Vbar{k}", "Vbar", k, f"hbar{k + 1}", f"h{k + 1}", (d[k + 1], db[k + 1]),
                                      "I_apical", "one_to_one" if fixed else "dense", not fixed)
    proj["pred"] = Projection("pred", "pred", K, f"h{K}", f"hbar{K}", (d[K], d[K]), "I_pred", pred_connect, False)
    return Layout(K, pops, proj)
