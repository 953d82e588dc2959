"""The resolved plan of a circuit: which synapse groups learn, at which rate, with which decay.

Every level (matrix, rate, spike) reads the plan from here instead of deciding it itself.  The
baselines of the paper's Sec. 4 / Table 2 are settings of the same circuit: V = Vbar = I fixed
and D_d = the Jacobian of D_u, with Wbar tied to W^T (bp), fixed random (fa), plastic under the
same rule and rate as W (kp, Akrout et al. 2019), or learned in a weight-mirror phase (wm).
"""

from __future__ import annotations

import dataclasses

from .schema import Circuit

DECAYS = ("absolute", "eta_scaled")

#: model settings that only the matrix engine implements: key -> the value every level implements.
#: A level without ``IMPLEMENTS_MATRIX_ONLY`` refuses a circuit that sets another value
#: (`matrix_only_settings`, checked by `salspike.levels.make_level`).
MATRIX_ONLY = {"interstream_rule": "hebbian"}


def matrix_only_settings(circuit: Circuit) -> dict:
    """The settings of ``circuit`` that only the matrix level implements (key -> value)."""
    return {k: circuit[k] for k, common in MATRIX_ONLY.items() if circuit[k] != common}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What an algorithm setting does to the circuit.

    plastic: the groups with a plasticity rule; identity_interstream: V = Vbar = I and fixed;
    wbar_mode: "plastic" (Eq. 7), "fixed", "tied" (= W^T, weight transport) or "mirror";
    downstream_nonlinearity: D_d; eta: learning rate per group; decay: per group, the
    coefficient c of the decay term -c w (see `decay_coefficient`; 0 for groups outside
    ``decay_groups``)."""

    plastic: frozenset
    identity_interstream: bool
    wbar_mode: str
    downstream_nonlinearity: str
    eta: dict
    decay: dict

    def learns(self, group: str) -> bool:
        """True when `group` (W, Wbar, V, Vbar) changes through its own local rule."""
        if group == "Wbar":
            return "Wbar" in self.plastic and self.wbar_mode == "plastic"
        return group in self.plastic


def decay_coefficient(eta: float, gamma: float, decay: str) -> float:
    """c of the decay term -c w: gamma (Eqs. 5-8, 'absolute') or eta * gamma (Algorithm 1,
    'eta_scaled')."""
    if decay == "absolute":
        return gamma
    if decay == "eta_scaled":
        return eta * gamma
    raise ValueError(f"unknown decay {decay!r}; choose one of {list(DECAYS)}")


def algorithm_plan(circuit: Circuit) -> Plan:
    """Resolve `circuit['algorithm']` and the rule options into a `Plan` (docs/algorithms.md)."""
    algo = circuit["algorithm"]
    eta = dict(circuit.eta)
    if algo == "sal":
        plastic = frozenset(circuit["plastic"])
        mode = "plastic" if "Wbar" in plastic else "fixed"
        identity, dd = False, circuit["downstream_nonlinearity"]
    else:
        if algo in ("kp", "wm"):
            eta["Wbar"] = eta["W"]  # KP: W and Wbar^T receive the same update; WM: one rate
        mode = {"bp": "tied", "fa": "fixed", "kp": "plastic", "wm": "mirror"}[algo]
        plastic = frozenset({"W", "Wbar"} if mode in ("plastic", "mirror") else {"W"})
        identity = True
        dd = "relu_jacobian" if circuit["upstream_nonlinearity"] == "relu" else "identity"
    decay_kind = circuit.rule_options["decay"]
    decay = {g: decay_coefficient(eta[g], circuit["gamma"], decay_kind) if g in circuit["decay_groups"] else 0.0
             for g in eta}
    return Plan(plastic, identity, mode, dd, eta, decay)
