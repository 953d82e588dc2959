"""What a protocol did to the circuit, as it did it: the hook calls of every level it opened.

`HookLog.wrap(level, condition)` returns the level with its hooks (stimulate, clamp, silence,
silence_apical, lesion, freeze, record) and its runs (step: input and target; predict and
activities: input only) logged; `HookLog.summary()` is the list the protocol sketch
(`salspike.sketch`) draws: one entry per (hook, target) with the number of conditions (levels
opened) it was applied in, out of how many.  The log is of the calls, not a declaration next to
them, so the sketch cannot disagree with what ran.
"""

from __future__ import annotations

__all__ = ["HookLog", "LOGGED"]

#: hook -> the argument that names its target
LOGGED = ("stimulate", "clamp", "silence", "unclamp", "silence_apical", "lesion", "freeze", "unfreeze", "record")
#: runs -> what they drive ("input": h0, "target": the error population)
RUNS = {"step": ("input", "target"), "activities": ("input", "target"), "predict": ("input",)}


class HookLog:
    def __init__(self):
        self.conditions = 0
        self._seen: dict[tuple[str, str], set[int]] = {}
        self._neurons: dict[tuple[str, str], set] = {}

    def wrap(self, level, condition: str = "") -> "LoggedLevel":
        self.conditions += 1
        return LoggedLevel(level, self, self.conditions)

    def add(self, hook: str, target: str, condition: int, neurons=None) -> None:
        key = (hook, str(target))
        self._seen.setdefault(key, set()).add(condition)
        self._neurons.setdefault(key, set()).add("all" if neurons is None else len(list(neurons)))

    def summary(self) -> list[dict]:
        """[{hook, target, conditions, of, neurons}] (neurons: "all", or the counts used)."""
        out = []
        for (hook, target), conds in self._seen.items():
            ns = self._neurons[(hook, target)]
            out.append({"hook": hook, "target": target, "conditions": len(conds), "of": self.conditions,
                        "neurons": "all" if ns == {"all"} else sorted(n for n in ns if n != "all")})
        return out


class LoggedLevel:
    """A level whose manipulations go to a `HookLog` (everything else is the level's)."""

    def __init__(self, level, log: HookLog, condition: int):
        self._lv, self._log, self._cond = level, log, condition

    def __getattr__(self, name):
        attr = getattr(self._lv, name)
        if name in LOGGED:
            def logged(target, *args, **kwargs):
                neurons = kwargs.get("neurons", args[1] if name == "clamp" and len(args) > 1 else
                                     args[0] if name in ("silence", "silence_apical") and args else None)
                self._log.add(name, target, self._cond, neurons)
                return attr(target, *args, **kwargs)
            return logged
        if name in RUNS:
            def run(*args, **kwargs):
                for what in RUNS[name]:
                    self._log.add("drive", what, self._cond)
                return attr(*args, **kwargs)
            return run
        return attr

    def note(self, hook: str, target: str, neurons=None) -> None:
        """A manipulation made outside the hook API (e.g. the spike level's forced spikes: "stimulate")."""
        self._log.add(hook, target, self._cond, neurons)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._lv.__exit__(*exc)
