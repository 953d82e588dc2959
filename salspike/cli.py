"""Command line: ``salspike train | step | sweep | build | compare | calibrate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .circuit import Circuit, parse_overrides
from .errors import ConfigError, SalspikeError, ShapeError

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "paper_mlp.toml"


def _model(path, overrides) -> Circuit:
    if path is None:
        if not DEFAULT_MODEL.is_file():
            raise ConfigError("no --model given and the bundled models/paper_mlp.toml was not found; pass --model FILE")
        path = DEFAULT_MODEL
    return Circuit.load(path, overrides)


def _load_npz(path, what) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as exc:  # noqa: BLE001 - any read failure is a user-facing file problem
        raise ConfigError(f"{what} file {p} is not a readable .npz archive: {exc}") from None


def cmd_train(args) -> int:
    from .datasets import load_dataset
    from .training import train

    overrides = parse_overrides(args.set)
    circuit = _model(args.model, overrides)
    if args.seed is not None:
        circuit = circuit.with_overrides({"seed": args.seed})
    data = load_dataset(args.dataset, root=args.data_root, seed=circuit["seed"],
                        **({"n_train": args.n_train} if args.n_train else {}))
    level_options = {"device": args.device} if args.level != "matrix" and args.device else {}
    summary = train(circuit, data, args.out, level=args.level, epochs=args.epochs, resume=args.resume,
                    progress=None if not args.quiet else False, level_options=level_options,
                    log=(lambda *a: None) if args.quiet else print)
    print(f"final test accuracy {summary['final_test_accuracy']:.4f} ({summary['algorithm']}, {summary['level']} level, "
          f"{summary['dataset']}); results in {args.out}")
    return 0


def cmd_step(args) -> int:
    from .levels import make_level
    from .results import atomic_save_npz

    overrides = parse_overrides(args.set)
    weights = _load_npz(args.weights, "weights")
    batch = _load_npz(args.inputs, "inputs")
    for key in ("x", "y"):
        if key not in batch:
            raise ShapeError(f"inputs file {args.inputs} has no array '{key}' (it needs x: n x d_0 and y: n x d_K)")
    x, y = batch["x"], batch["y"]
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ShapeError(f"inputs file {args.inputs}: x {x.shape} and y {y.shape} must be 2-D with the same rows")
    if args.model is None:
        circuit = Circuit.from_shapes({k: v.shape for k, v in weights.items()}, overrides)
    else:
        circuit = Circuit.load(args.model, overrides)
        if "W0" not in weights:
            raise ShapeError(f"weights file {args.weights} has no 'W0'")
        K = circuit.n_layers
        last = weights.get(f"W{K - 1}")
        circuit = circuit.with_io_widths(weights["W0"].shape[1], last.shape[0] if last is not None else y.shape[1])
    options = {}
    if args.level != "matrix":
        options["device"] = args.device or circuit["rate.device"]
        if args.level == "spike" and args.trials:
            options["trials"] = args.trials
    level = make_level(args.level, circuit, weights, **options)
    online = args.online or args.level != "matrix"
    try:
        activities = level.step(x, y, online=online)
        new = dict(level.weights)
    finally:
        level.close()
    atomic_save_npz(args.out, **new, **activities)
    print(f"wrote {args.out}: {len(new)} weights, activities of {x.shape[0]} samples "
          f"({args.level} level, {'online' if online else 'batch mean'})")
    return 0


def cmd_sweep(args) -> int:
    from .sweeps import parse_grid, run_sweep

    grid = parse_grid(args.grid or [])
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [None]
    table = run_sweep(args.model or DEFAULT_MODEL, args.dataset, args.out, grid=grid, seeds=seeds,
                      base_overrides=parse_overrides(args.set), jobs=args.jobs, epochs=args.epochs,
                      data_root=args.data_root, level=args.level)
    print(json.dumps(table, indent=1))
    return 0


def cmd_build(args) -> int:
    from .brian.build import build_level

    circuit = _model(args.model, parse_overrides(args.set))
    info = build_level(args.level, circuit, device=args.device, build_dir=args.build_dir,
                       compile_only=args.compile_only, cuda_options=_cuda_options(args))
    print(json.dumps(info, indent=1, default=str))
    return 0


def _cuda_options(args):
    opts = {}
    if getattr(args, "compute_capability", None):
        opts["compute_capability"] = float(args.compute_capability)
    if getattr(args, "gpu_id", None) is not None:
        opts["gpu_id"] = args.gpu_id
    if getattr(args, "cuda_path", None):
        opts["cuda_path"] = args.cuda_path
    return opts


def cmd_compare(args) -> int:
    from .compare import compare_levels

    circuit = _model(args.model, parse_overrides(args.set))
    result = compare_levels(circuit, levels=args.levels.split(","), out=args.out, dataset=args.dataset,
                            protocol=args.protocol, trials=args.trials, device=args.device)
    print(result["table"])
    return 0


def cmd_calibrate(args) -> int:
    from .brian.spike import calibrate_model_file

    path = calibrate_model_file(args.model, out=args.out)
    print(f"calibrated transfer function written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="salspike", description="Simulate the self-assembling learning (SAL) "
                                "circuit of Liao et al. 2024 at the matrix, rate and spike levels.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, model_required=False):
        sp.add_argument("--model", default=None, required=model_required,
                        help="TOML model file (default: models/paper_mlp.toml)")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a model key, e.g. --set eta.W=0.01 (repeatable)")

    t = sub.add_parser("train", help="train on a dataset and write a results folder")
    common(t)
    t.add_argument("--dataset", default="digits", help="digits (default), teacher_student, mnist, fashion_mnist, "
                   "cifar10, svhn")
    t.add_argument("--data-root", default=None, help="folder holding the dataset files (not needed for digits)")
    t.add_argument("--n-train", type=int, default=None, help="use a random subset of this many training samples")
    t.add_argument("--level", default="matrix", choices=["matrix", "rate", "spike"])
    t.add_argument("--device", default=None, help="Brian2 device for the rate/spike levels")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--out", required=True, help="results folder")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("step", help="apply one update (the cross-level contract) and write the new weights")
    common(s)
    s.add_argument("--level", default="matrix", choices=["matrix", "rate", "spike"])
    s.add_argument("--device", default=None, help="Brian2 device (runtime, cpp_standalone, cuda_standalone)")
    s.add_argument("--weights", required=True, help="IN.npz with W{k}, Vbar{k}, Wbar{k}, V{k}")
    s.add_argument("--inputs", required=True, help="BATCH.npz with x (n x d_0) and y (n x d_K)")
    s.add_argument("--out", required=True, help="OUT.npz: updated weights plus h{k}, hbar{k}")
    s.add_argument("--online", action="store_true", help="one update per row instead of the batch mean")
    s.add_argument("--trials", type=int, default=None, help="spike level: repeated trials averaged per row")
    s.set_defaults(func=cmd_step)

    w = sub.add_parser("sweep", help="grid over settings and seeds; resumable, skips finished points")
    common(w)
    w.add_argument("--dataset", default="digits")
    w.add_argument("--data-root", default=None)
    w.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="a grid axis; KEY may be eta_scale (multiplies all four rates, the paper's Fig. 5 search)")
    w.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2,3,4")
    w.add_argument("--level", default="matrix", choices=["matrix", "rate", "spike"])
    w.add_argument("--epochs", type=int, default=None)
    w.add_argument("--jobs", type=int, default=1, help="parallel processes (default 1)")
    w.add_argument("--out", required=True)
    w.set_defaults(func=cmd_sweep)

    b = sub.add_parser("build", help="generate (and compile) the Brian2 code of a level")
    common(b)
    b.add_argument("--level", default="rate", choices=["rate", "spike"])
    b.add_argument("--device", default="cpp_standalone", choices=["cpp_standalone", "cuda_standalone"])
    b.add_argument("--build-dir", default=None)
    b.add_argument("--compile-only", action="store_true", help="compile without running (no GPU needed)")
    b.add_argument("--compute-capability", default=None, help="e.g. 9.0 when no GPU can be asked")
    b.add_argument("--gpu-id", type=int, default=None)
    b.add_argument("--cuda-path", default=None, help="CUDA toolkit folder holding bin/nvcc")
    b.set_defaults(func=cmd_build)

    c = sub.add_parser("compare", help="run the same trials at two levels and write a side-by-side table")
    common(c)
    c.add_argument("--levels", default="rate,spike")
    c.add_argument("--dataset", default=None, help="take the trials from a dataset")
    c.add_argument("--protocol", default=None, help="a protocol file from protocols/ instead of a dataset")
    c.add_argument("--trials", type=int, default=20)
    c.add_argument("--device", default="runtime")
    c.add_argument("--out", required=True)
    c.set_defaults(func=cmd_compare)

    k = sub.add_parser("calibrate", help="calibrate the two-compartment neuron's transfer function")
    k.add_argument("--model", required=True)
    k.add_argument("--out", default=None, help="write the calibrated model here (default: in place)")
    k.set_defaults(func=cmd_calibrate)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SalspikeError as exc:
        print(f"salspike {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"salspike {args.command}: interrupted; finished epochs are saved (use --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
