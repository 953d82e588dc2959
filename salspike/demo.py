"""`salspike demo --out DIR`: a short end-to-end run that shows the product (a few minutes on 2
cores, no download, no compiler needed).

1. Train the paper's 5-layer MLP with SAL on the bundled scikit-learn digits (matrix level, a
   few epochs) and draw its training curves: ``DIR/train``.
2. Run the ``area_silencing`` protocol at the spike level (the closed-loop spiking network,
   Brian2's runtime device, short windows): silence a lower or a higher area and read activity
   and plasticity in the others from spike counts: ``DIR/area_silencing`` with its prediction
   figure, its table and ``area_silencing.nwb`` (every spike of the run, for pynwb).
3. Say where to look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .errors import ConfigError
from .resources import resolve

__all__ = ["run_demo", "DEMO_SPIKE"]

#: the demo's spike-level version of area_silencing: one seed, short windows
DEMO_SPIKE = """
[at.spike]                           # salspike demo: one seed, short windows
seeds = [0]
trials = {trials}
probe_trials = {trials}

[at.spike.set]
spike = {{ t_settle = 20.0, t_window = 60.0, rate_scale = 100.0, dt = 0.5 }}
"""


def run_demo(out: str | Path, *, epochs: int = 3, n_train: int | None = None, trials: int = 5,
             areas: list[int] | None = None, log: Callable[[str], None] = print) -> dict:
    """Run the demo into the new folder ``out`` (``areas``: the areas silenced, default the file's
    1 and 2); returns the paths to look at."""
    from .circuit import Circuit
    from .datasets import load_dataset
    from .figures import regenerate
    from .protocols import run_protocol
    from .training import train

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty: pick a new folder for the demo")
    if epochs < 1 or trials < 1 or (n_train is not None and n_train < 1):
        raise ConfigError("salspike demo: --epochs, --trials and --n-train must be positive")
    out.mkdir(parents=True, exist_ok=True)

    log(f"[1/3] training the paper's MLP with SAL on the digits, {epochs} epochs (matrix level) -> {out / 'train'}")
    circuit = Circuit.load(resolve("model", "paper_mlp"))
    data = load_dataset("digits", seed=circuit["seed"], **({"n_train": n_train} if n_train else {}))
    summary = train(circuit, data, str(out / "train"), level="matrix", epochs=epochs, progress=False,
                    log=lambda *a: None)
    curves = regenerate(out / "train")
    log(f"      test accuracy {summary['final_test_accuracy']:.3f} after {epochs} epochs")

    log(f"[2/3] area_silencing at the spike level (closed-loop spiking network, runtime device) -> "
        f"{out / 'area_silencing'}")
    text = resolve("protocol", "area_silencing").read_text().split("\n[at.spike]")[0]
    proto = out / "area_silencing.toml"
    extra = f"areas = {list(areas)}\n" if areas else ""
    proto.write_text(text + DEMO_SPIKE.format(trials=int(trials)).replace("seeds = [0]\n", "seeds = [0]\n" + extra))
    res = run_protocol(proto, "spike", out / "area_silencing", device="runtime")
    log(res["table"])

    files = {Path(f).name: Path(f) for f in res["files"]}
    look = {"prediction figure": files.get("area_silencing.png"), "table": files.get("area_silencing.csv"),
            "spike trains (NWB)": files.get("area_silencing.nwb"),
            "spike raster + PSTH": files.get("area_silencing_raster.png"),
            "training curves": next((p for p in curves if p.suffix == ".png"), None)}
    log("[3/3] where to look:")
    for what, path in look.items():
        log(f"      {what:<20} {path}")
    log("      the prediction in words: docs/predictions.md (silencing a lower vs a higher area); open the NWB "
        "file with pynwb: NWBHDF5IO(path).read().units")
    return {"train": summary, "protocol": res, "look": look}
