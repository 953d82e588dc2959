"""The phases of a rate-level trial and the gates that run N trials in ONE Brian2 ``run()``.

`TrialSchedule`: phases of a trial (forward settle, feedback settle, plasticity window) as step
counts and the gates of N trials as arrays, fed to TimedArrays so that no Python runs between
trials.  The plasticity ODEs run on their own clock (every step, or once per trial for one-shot
updates).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..circuit import Circuit
from ..errors import ConfigError

def _steps(length_ms: float, dt_ms: float, what: str) -> int:
    n = int(round(length_ms / dt_ms))
    if n < 1 or abs(n * dt_ms - length_ms) > 1e-9 * max(length_ms, dt_ms):
        raise ConfigError(f"{what} = {length_ms} ms is not a positive integer multiple of rate.dt = {dt_ms} ms")
    return n


@dataclasses.dataclass(frozen=True)
class TrialSchedule:
    """One trial = forward settle, feedback settle, plasticity window (lengths in steps of dt).

    N trials run for ``N * t_trial + dt`` (`run_duration_ms`): the extra step at the end lets
    the last trial's one-shot update and snapshot happen inside the run.  Gates (arrays for
    TimedArrays, see `gates`):

    * ``gate_fb`` (per step): 1 from the start of the feedback phase to the end of the trial;
    * ``gate_rec`` (per step): 1 on the first step of the window, whose Euler update copies the
      activity reached at the end of the feedback phase into the snapshot ``*_rec`` (read by a
      monitor every t_trial, at the start of the next trial);
    * ``gate_p``, the plasticity gate.  one_shot: per trial (a TimedArray with dt = t_trial, the
      plasticity ODEs on a clock of period t_trial, T_p = t_trial): entry n + 1 gates the update
      made at t = (n + 1) t_trial from the settled state at the end of trial n's window, i.e.
      exactly one update ``eta*signal - c*w`` per trial (entry 0 is 0: no update at t = 0).
      The synapses skip the per-step plasticity pass, which halves the cost of a step.
      continuous: per step, 1 over the whole window (plasticity ODEs every step,
      T_p = t_plasticity).
    """

    dt_ms: float
    n_forward: int
    n_feedback: int
    n_plasticity: int

    @classmethod
    def from_circuit(cls, circuit: Circuit) -> "TrialSchedule":
        dt = circuit["rate.dt"]
        return cls(dt, _steps(circuit["rate.t_forward"], dt, "rate.t_forward"),
                   _steps(circuit["rate.t_feedback"], dt, "rate.t_feedback"),
                   _steps(circuit["rate.t_plasticity"], dt, "rate.t_plasticity"))

    @property
    def steps_per_trial(self) -> int:
        return self.n_forward + self.n_feedback + self.n_plasticity

    @property
    def t_trial_ms(self) -> float:
        return self.steps_per_trial * self.dt_ms

    @property
    def record_step(self) -> int:
        """Step (within a trial) whose update copies the end-of-feedback activity."""
        return self.n_forward + self.n_feedback

    def run_steps(self, n_trials: int) -> int:
        return n_trials * self.steps_per_trial + 1

    def run_duration_ms(self, n_trials: int) -> float:
        """N trials plus one step (see the class docstring)."""
        return self.run_steps(n_trials) * self.dt_ms

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in ("one_shot", "continuous"):
            raise ConfigError(f"rate.plasticity = {mode!r}; choose one_shot or continuous")

    def plasticity_clock_ms(self, mode: str) -> float:
        """Period of the plasticity ODEs' clock: t_trial (one_shot) or dt (continuous)."""
        self._check_mode(mode)
        return self.t_trial_ms if mode == "one_shot" else self.dt_ms

    def plasticity_time_ms(self, mode: str) -> float:
        """T_p of the plasticity ODE dw/dt = gate_p (eta*signal - c*w) / T_p: t_trial for one_shot
        (one Euler step of its clock), the window length for continuous."""
        self._check_mode(mode)
        return self.t_trial_ms if mode == "one_shot" else self.n_plasticity * self.dt_ms

    def gates(self, n_trials: int, mode: str, plastic_trials: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """gate_fb, gate_rec (length run_steps) and gate_p (length n_trials + 1 for one_shot,
        run_steps for continuous); plastic_trials (0/1 per trial) masks the plasticity."""
        self._check_mode(mode)
        S = self.steps_per_trial
        mask = np.ones(n_trials) if plastic_trials is None else np.asarray(plastic_trials, dtype=float)
        fb = np.zeros(S)
        fb[self.n_forward:] = 1.0
        rec = np.zeros(S)
        rec[self.record_step] = 1.0
        out = {"gate_fb": np.append(np.tile(fb, n_trials), 0.0),
               "gate_rec": np.append(np.tile(rec, n_trials), 0.0)}
        if mode == "one_shot":
            out["gate_p"] = np.concatenate([[0.0], mask])
        else:
            p = np.zeros(S)
            p[self.record_step:] = 1.0
            out["gate_p"] = np.append((mask[:, None] * p[None, :]).ravel(), 0.0)
        return out
