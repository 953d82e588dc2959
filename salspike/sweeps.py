"""Grids over model settings and seeds on dask.distributed, resumable, gathered into one dataset.

A sweep is a :class:`SweepSpec`: a model, a dataset, a level, a grid of model settings (list-valued
keys such as ``hidden`` included), seeds, epochs, the metrics to collect and where to run
(``cluster``).  It comes from a TOML sweep file (:func:`load_sweep_file`, validated like model
files) and/or command-line flags (``salspike sweep [FILE] ...``; flags override the file).

Each (grid point, seed) is one :func:`salspike.training.train` call in its own folder
``OUT/points/<label>-<key>``, where ``key`` is a hash of the point's FULL resolved configuration
(:func:`point_config`: the resolved model dict, epochs, dataset, n_train, level and level
options), so a changed setting (e.g. more epochs) is a new point and never a cached result.  A
point whose ``summary.json`` is present under a matching ``point.json`` is skipped; a point that
raised (divergence, ConfigError, a crash) gets ``failed.json`` (status and message) and the sweep
goes on.  A killed sweep resumes: finished points are skipped, a half-trained point continues from
its last checkpoint (``train(resume=True)``).

Points run on a dask LocalCluster (one single-threaded worker process per core), an existing
scheduler, a SLURM/PBS cluster through dask-jobqueue, or in-process without dask (``serial``).
Results: ``OUT/sweep.nc`` (xarray Dataset, netCDF through h5netcdf, dims = grid keys, seed,
epoch) and ``OUT/sweep.json`` (one row per run and a table of mean and sample standard deviation
over seeds per grid point).  ``eta_scale`` multiplies all four learning rates: the paper fixes
their ratio and tunes the overall factor (Sec. 2.1, Fig. 5).  See docs/sweeps.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .circuit import GROUPS, SCHEMA, Circuit, parse_value, read_toml_file
from .circuit.schema import ONE_RATE_ALGORITHMS, did_you_mean, flatten_tables
from .console import note, progress
from .errors import ConfigError, DivergenceError
from .resources import resolve
from .results import RunDir, atomic_write_json, atomic_write_path, dumps_json, provenance

DEFAULT_MODEL = "paper_mlp"
LEVEL_NAMES = ("matrix", "rate", "spike")
DEVICES = ("runtime", "cpp_standalone", "cuda_standalone")
#: per-epoch metrics of metrics.jsonl
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "epoch_s")
#: epoch metrics that exist only when the sweep holds out a validation split (``val_size``)
VAL_METRICS = ("val_loss", "val_accuracy")
#: per-layer metrics of metrics.jsonl (``layers``), collected as ``<name>_layer<k>``
LAYER_METRICS = ("delta_angle", "delta_H_angle", "dW_angle", "H_min_eig", "H_cond", "erank_WWT", "erank_H",
                 "lemma1_distance", "lemma1_normalised", "Wbar_WT_angle", "Wbar_transport_angle",
                 "rel_change_W", "rel_change_Wbar", "rel_change_V", "rel_change_Vbar")
DEFAULT_METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "delta_angle")
#: grid keys that are not model keys
EXTRA_GRID_KEYS = ("eta_scale",)
#: keys of a sweep file (top level) and what they hold
SWEEP_KEYS = {
    "model": "model file or bundled name (default paper_mlp); relative paths are read from the sweep file's folder",
    "dataset": "dataset of every point (default digits)",
    "data_root": "folder of the dataset files (mnist, fashion_mnist, cifar10, svhn; optional for mnist5k)",
    "n_train": "seeded random subset of this many training samples",
    "val_size": "fraction of the training split held out (stratified, seeded) as a validation split; "
                "collect val_accuracy and tune on it, never on test_accuracy",
    "level": "matrix, rate or spike (default matrix)",
    "device": "Brian2 device of the rate/spike levels (default: the model's rate.device)",
    "epochs": "epochs per point (default: the model's training.epochs)",
    "seeds": "list of seeds (default: the model's seed)",
    "metrics": f"per-epoch metrics to collect (default {list(DEFAULT_METRICS)})",
    "out": "sweep folder",
    "set": "table of model overrides for every point (like --set)",
    "grid": "table KEY = [values]: the grid axes (a list-valued key takes a list of lists)",
    "cluster": "table: where the points run (kind = local, serial, scheduler, slurm or pbs)",
}
CLUSTER_KINDS = ("local", "serial", "scheduler", "slurm", "pbs")
#: [cluster] keys: ``kind``, ``workers`` (local), ``address`` (scheduler), ``jobs`` (jobqueue: jobs to
#: start) and the dask-jobqueue keyword arguments passed through.
JOBQUEUE_KEYS = ("cores", "memory", "processes", "walltime", "queue", "account", "job_extra_directives",
                 "job_script_prologue", "job_directives_skip", "log_directory", "local_directory",
                 "interface", "python", "worker_extra_args", "resource_spec", "job_name", "shebang")
CLUSTER_KEYS = ("kind", "workers", "address", "jobs", *JOBQUEUE_KEYS)


# --------------------------------------------------------------------------- the sweep specification


@dataclasses.dataclass
class SweepSpec:
    """A sweep: what to train (model, set, dataset, level, epochs), over what (grid, seeds), what to
    keep (metrics), where to write (out) and where to run (cluster)."""

    model: str = DEFAULT_MODEL
    dataset: str = "digits"
    data_root: str | None = None
    n_train: int | None = None
    val_size: float | None = None
    level: str = "matrix"
    device: str | None = None
    epochs: int | None = None
    seeds: list | None = None
    metrics: list = dataclasses.field(default_factory=lambda: list(DEFAULT_METRICS))
    out: str | None = None
    set: dict = dataclasses.field(default_factory=dict)
    grid: dict = dataclasses.field(default_factory=dict)
    cluster: dict = dataclasses.field(default_factory=lambda: {"kind": "local"})
    source: str = "command line"
    base_dir: str = "."


def _positive_int(value, what: str, source: str, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum``, else a ConfigError naming ``source``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{source}: {what} must be an integer >= {minimum}, got {value!r}")
    return value


def check_grid_key(key: str, source: str) -> None:
    """A ConfigError naming ``source`` unless ``key`` can be a grid axis (a model key or eta_scale)."""
    if key == "seed":
        raise ConfigError(f"{source}: grid key 'seed': give the seeds with seeds = [...] (--seeds), not in the grid")
    if key not in SCHEMA and key not in EXTRA_GRID_KEYS:
        raise ConfigError(f"{source}: unknown grid key '{key}'.{did_you_mean(key, [*SCHEMA, *EXTRA_GRID_KEYS])} "
                          "Grid keys are model keys (`salspike model show`) or eta_scale")


def check_grid_values(key: str, values: list, source: str) -> list:
    """The values of one grid axis, checked: a non-empty list; lists for list-valued keys; numbers > 0 for
    eta_scale."""
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{source}: grid key '{key}' needs a non-empty list of values, got {values!r}")
    if key in SCHEMA and SCHEMA[key][0] is list:
        bad = [v for v in values if not isinstance(v, list)]
        if bad:
            raise ConfigError(f"{source}: grid key '{key}' is list-valued: give a list of lists, e.g. "
                              f"{key} = [[100], [200, 200]] (--grid '{key}=[100];[200,200]'), got {bad[0]!r}")
    if key == "eta_scale":
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0]
        if bad:
            raise ConfigError(f"{source}: grid key 'eta_scale' takes numbers > 0, got {bad[0]!r}")
    return values


def check_seeds(seeds, source: str) -> list[int]:
    """Seeds as a list of non-negative integers (one int is a list of one)."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                             for s in seeds):
        raise ConfigError(f"{source}: seeds must be comma-separated integers (a list of integers), e.g. [0, 1, 2], "
                          f"got {seeds!r}")
    if min(seeds) < 0:
        raise ConfigError(f"{source}: seeds must be non-negative integers, got {seeds!r}")
    return list(dict.fromkeys(seeds))


def check_val_size(value, source: str) -> float:
    """A validation fraction 0 < value < 1, else a one-line ConfigError naming ``source``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{source}: val_size must be a fraction between 0 and 1 (e.g. 0.2), got {value!r}")
    return float(value)


def check_metrics(metrics, source: str) -> list[str]:
    """Metric names, each one of EPOCH_METRICS or LAYER_METRICS."""
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    if not isinstance(metrics, list) or not metrics:
        raise ConfigError(f"{source}: metrics must be a non-empty list of names, got {metrics!r}")
    known = (*EPOCH_METRICS, *LAYER_METRICS)
    for m in metrics:
        if m not in known:
            raise ConfigError(f"{source}: unknown metric {m!r}.{did_you_mean(str(m), known)} "
                              f"Known: {', '.join(known)}")
    return list(dict.fromkeys(metrics))


def check_cluster(cluster: dict, source: str) -> dict:
    """The [cluster] table checked: known keys, a known kind, and the keys that kind uses."""
    if not isinstance(cluster, dict):
        raise ConfigError(f"{source}: [cluster] must be a table, got {cluster!r}")
    for key in cluster:
        if key not in CLUSTER_KEYS:
            raise ConfigError(f"{source}: unknown key 'cluster.{key}'.{did_you_mean(key, CLUSTER_KEYS)} "
                              f"[cluster] keys: {', '.join(CLUSTER_KEYS)}")
    cluster = dict(cluster)
    kind = cluster.setdefault("kind", "scheduler" if "address" in cluster else "local")
    if kind not in CLUSTER_KINDS:
        raise ConfigError(f"{source}: cluster.kind = {kind!r} is not allowed; choose one of {list(CLUSTER_KINDS)}")
    if "workers" in cluster:
        _positive_int(cluster["workers"], "cluster.workers", source, 0)
        if kind not in ("local", "serial"):
            raise ConfigError(f"{source}: cluster.workers applies to kind = \"local\"; for {kind} use "
                              + ("jobs" if kind in ("slurm", "pbs") else "the scheduler's own workers"))
    if kind == "scheduler" and not isinstance(cluster.get("address"), str):
        raise ConfigError(f"{source}: cluster kind \"scheduler\" needs address = \"tcp://HOST:PORT\"")
    if kind != "scheduler" and "address" in cluster:
        raise ConfigError(f"{source}: cluster.address applies to kind = \"scheduler\" only (got kind = {kind!r})")
    jq = [k for k in cluster if k in (*JOBQUEUE_KEYS, "jobs")]
    if jq and kind not in ("slurm", "pbs"):
        raise ConfigError(f"{source}: cluster.{jq[0]} applies to kind = \"slurm\" or \"pbs\" (got kind = {kind!r})")
    if "jobs" in cluster:
        _positive_int(cluster["jobs"], "cluster.jobs", source)
    return cluster


def load_sweep_file(path) -> SweepSpec:
    """Read and validate a sweep TOML file; an unknown key or a bad value is a one-line ConfigError naming
    the file and the key (with a "did you mean")."""
    path = Path(path)
    data = read_toml_file(path, "sweep", "sweeps/example.toml")
    src = str(path)
    spec = SweepSpec(source=src, base_dir=str(path.resolve().parent))
    for key, value in data.items():
        if key not in SWEEP_KEYS:
            hint = (" Model keys go under [set] (every point) or [grid] (an axis)."
                    if key in SCHEMA or key.split(".")[0] in {k.split(".")[0] for k in SCHEMA} else "")
            raise ConfigError(f"{src}: unknown key '{key}'.{did_you_mean(key, SWEEP_KEYS)}{hint} "
                              f"Sweep-file keys: {', '.join(SWEEP_KEYS)}")
    for key in ("model", "dataset", "data_root", "level", "device", "out"):
        if key in data:
            if not isinstance(data[key], str) or not data[key].strip():
                raise ConfigError(f"{src}: key '{key}' must be a non-empty string, got {data[key]!r}")
            setattr(spec, key, data[key])
    for key in ("n_train", "epochs"):
        if key in data:
            setattr(spec, key, _positive_int(data[key], f"key '{key}'", src))
    if "val_size" in data:
        spec.val_size = check_val_size(data["val_size"], f"{src}: key 'val_size'")
    if "seeds" in data:
        spec.seeds = check_seeds(data["seeds"], f"{src}: key 'seeds'")
    if "metrics" in data:
        spec.metrics = check_metrics(data["metrics"], f"{src}: key 'metrics'")
    if "set" in data:
        if not isinstance(data["set"], dict):
            raise ConfigError(f"{src}: 'set' must be a table of model keys ([set])")
        spec.set = flatten_tables(data["set"])
        for key in spec.set:
            if key not in SCHEMA:
                raise ConfigError(f"{src}: unknown key 'set.{key}'.{did_you_mean(key, SCHEMA)} "
                                  "`salspike model show` lists every model key")
    if "grid" in data:
        if not isinstance(data["grid"], dict):
            raise ConfigError(f"{src}: 'grid' must be a table KEY = [values] ([grid])")
        grid = flatten_tables(data["grid"])
        for key, values in grid.items():
            check_grid_key(key, src)
            check_grid_values(key, values, f"{src}: [grid]")
        spec.grid = grid
    if "cluster" in data:
        spec.cluster = check_cluster(data["cluster"], src)
    check_spec(spec)
    return spec


def check_spec(spec: SweepSpec) -> SweepSpec:
    """Checks that need the whole spec (dataset, level and device)."""
    from .datasets import DATASETS

    name = str(spec.dataset).lower().replace("-", "_")
    if name not in DATASETS:
        raise ConfigError(f"{spec.source}: dataset {spec.dataset!r} is unknown.{did_you_mean(name, DATASETS)} "
                          f"Datasets: {', '.join(DATASETS)}")
    if name in ("digits", "teacher_student") and spec.data_root is not None:
        raise ConfigError(f"{spec.source}: dataset {spec.dataset!r} is built in and reads no files: drop data_root")
    if spec.level not in LEVEL_NAMES:
        raise ConfigError(f"{spec.source}: level {spec.level!r} is not allowed; choose one of {list(LEVEL_NAMES)}")
    if spec.device is not None:
        if spec.device not in DEVICES:
            raise ConfigError(f"{spec.source}: device {spec.device!r} is not allowed; choose one of {list(DEVICES)}")
        if spec.level == "matrix":
            raise ConfigError(f"{spec.source}: device applies to the Brian2 levels only (rate, spike); "
                              "the matrix level runs in numpy: drop it")
    if spec.val_size is not None:
        check_val_size(spec.val_size, spec.source)
    wanted = [m for m in spec.metrics if m in VAL_METRICS]
    if wanted and not spec.val_size:
        raise ConfigError(f"{spec.source}: metric(s) {wanted} need a validation split: set val_size "
                          "(--val-size), e.g. 0.2")
    return spec


# --------------------------------------------------------------------------- command-line syntax


def parse_grid(items: list[str], source: str = "--grid") -> dict[str, list]:
    """``--grid`` items as a grid: ``KEY=V1,V2,...`` (TOML values separated by commas) or, for list values,
    ``KEY=[..];[..]`` (TOML lists separated by semicolons), e.g. ``hidden=[100];[200,200]``."""
    grid = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{source} {item!r}: expected KEY=V1,V2,... (e.g. --grid eta_scale=0.5,1,2) or, for "
                              "list values, KEY=[..];[..] (e.g. --grid 'hidden=[100];[200,200]')")
        key, text = (s.strip() for s in item.split("=", 1))
        check_grid_key(key, f"{source} {item!r}")
        if text.startswith("["):
            values = []
            for part in (p.strip() for p in text.split(";")):
                if not part:
                    continue
                value = parse_value(part)
                if not isinstance(value, list):
                    raise ConfigError(f"{source} {item!r}: {part!r} is not a list: separate list values with ';', "
                                      "e.g. --grid 'hidden=[100];[200,200]'")
                values.append(value)
        else:
            values = [parse_value(v.strip()) for v in text.split(",") if v.strip()]
        grid[key] = check_grid_values(key, values, f"{source} {item!r}")
    return grid


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: comma-separated non-negative integers and ranges ``A-B`` (inclusive), e.g. ``0,1,5-9``."""
    seeds = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        try:
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ConfigError(f"--seeds {text!r}: expected comma-separated integers or ranges A-B, "
                              "e.g. 0,1,2 or 0-4") from None
    return check_seeds(seeds, f"--seeds {text!r}")


# --------------------------------------------------------------------------- points and their keys


def point_overrides(base: Circuit, point: dict) -> dict:
    """Model overrides of one grid point (``eta_scale`` multiplies the four learning rates)."""
    over = {k: v for k, v in point.items() if k not in EXTRA_GRID_KEYS}
    if "eta_scale" in point:
        one_rate = point.get("algorithm", base["algorithm"]) in ONE_RATE_ALGORITHMS
        for g in GROUPS:
            if g == "Wbar" and one_rate and "eta.Wbar" not in base.explicit and "eta.Wbar" not in point:
                continue  # kp/wm train Wbar at eta.W; scaling an unset eta.Wbar would set it explicitly
            over[f"eta.{g}"] = over.get(f"eta.{g}", base[f"eta.{g}"]) * float(point["eta_scale"])
    return over


def point_config(circuit: Circuit, spec: SweepSpec) -> dict:
    """Everything that decides a point's result: the resolved model dict (seed included), epochs,
    dataset, n_train, val_size (only when set, so sweeps without one keep their keys), level and
    level options.  Its hash (:func:`config_key`) names the folder."""
    config = {"model": circuit.to_dict(), "epochs": circuit["training.epochs"], "dataset": spec.dataset,
              "n_train": spec.n_train, "level": spec.level, "level_options": level_options(spec)}
    if spec.val_size:
        config["val_size"] = spec.val_size
    return config


def level_options(spec: SweepSpec) -> dict:
    """The options passed to the level (the Brian2 device when one is given)."""
    return {"device": spec.device} if spec.device else {}


def config_key(config: dict) -> str:
    """A 12-hex-digit hash of a configuration (canonical JSON, sorted keys)."""
    text = json.dumps(json.loads(dumps_json(config, None)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _value_label(v) -> str:
    """A grid value as folder-label text (lists joined with '+')."""
    if isinstance(v, list):
        return "+".join(_value_label(x) for x in v) or "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def point_label(point: dict, seed) -> str:
    """A readable folder label: ``eta_scale=0.5,hidden=100+100,seed=0`` (unsafe characters as _)."""
    text = ",".join([*(f"{k}={_value_label(v)}" for k, v in point.items()), f"seed={seed}"])
    return re.sub(r"[^A-Za-z0-9._=+,-]", "_", text)[:120]


def coord_value(v):
    """A grid value as a coordinate: lists become their JSON text."""
    return json.dumps(v) if isinstance(v, (list, dict)) else v


@dataclasses.dataclass
class Point:
    """One (grid point, seed) run."""

    coords: dict
    seed: int
    overrides: dict
    key: str
    config: dict | None
    folder: str
    index: tuple = ()
    status: str = "pending"
    error: str | None = None


def _resolve_model(spec: SweepSpec) -> Path:
    """The model file: a path (relative to the sweep file's folder when it is there) or a bundled name."""
    p = Path(spec.model)
    if not p.is_absolute() and not p.is_file() and (Path(spec.base_dir) / p).is_file():
        p = Path(spec.base_dir) / p
    return resolve("model", p).resolve()


def plan_points(spec: SweepSpec, model: Path, out: Path) -> list[Point]:
    """Every (grid point, seed) with its resolved configuration, key and folder.  A point whose settings do
    not make a valid circuit is planned as failed (status "error") instead of stopping the sweep."""
    base = Circuit.load(model, spec.set)
    if spec.epochs is not None:
        base = base.with_overrides({"training.epochs": spec.epochs}, "epochs")
    seeds = spec.seeds if spec.seeds else [base["seed"]]
    keys = list(spec.grid)
    indices = list(itertools.product(*(range(len(spec.grid[k])) for k in keys)))
    existing = {}
    if (out / "points").is_dir():
        for d in (out / "points").iterdir():
            existing.setdefault(d.name.rsplit("-", 1)[-1], d)
    points = []
    for index in indices:
        combo = {k: spec.grid[k][i] for k, i in zip(keys, index)}
        for si, seed in enumerate(seeds):
            over = {**spec.set, **point_overrides(base, combo), "seed": seed}
            if spec.epochs is not None:
                over["training.epochs"] = spec.epochs
            error, config = None, None
            try:
                circuit = Circuit.load(model, over)
                config = point_config(circuit, spec)
                key = config_key(config)
            except ConfigError as exc:
                error = str(exc)
                key = config_key({"invalid": over, "dataset": spec.dataset, "level": spec.level})
            folder = existing.get(key) or out / "points" / f"{point_label(combo, seed)}-{key}"
            pt = Point(coords=combo, seed=seed, overrides=over, key=key, config=config, folder=str(folder),
                       index=(*index, si))
            if error is not None:
                pt.status, pt.error = "error", error
            points.append(pt)
    return points


def point_state(folder: str, key: str) -> tuple[str, str | None]:
    """("done", None) when ``summary.json`` is present and ``point.json`` holds ``key``; (status, error) of a
    matching ``failed.json``; else ("pending", None)."""
    f = Path(folder)
    try:
        meta = json.loads((f / "point.json").read_text())
    except (OSError, ValueError):
        return "pending", None
    if not isinstance(meta, dict) or meta.get("key") != key:
        return "pending", None
    if (f / "summary.json").is_file():
        return "done", None
    try:
        failed = json.loads((f / "failed.json").read_text())
        if failed.get("key") == key:
            return str(failed.get("status", "error")), failed.get("error")
    except (OSError, ValueError, AttributeError):
        pass
    return "pending", None


# --------------------------------------------------------------------------- one point (runs on a worker)


_DATA_CACHE: dict = {}


def _dataset(name, root, seed, n_train, val_size=None):
    """The dataset of a point, loaded once per worker process for consecutive points with the same data."""
    from .datasets import load_dataset

    k = (name, root, seed, n_train, val_size)
    if k not in _DATA_CACHE:
        _DATA_CACHE.clear()  # one dataset at a time per worker
        _DATA_CACHE[k] = load_dataset(name, root=root, seed=seed, val_size=val_size,
                                      **({"n_train": n_train} if n_train else {}))
    return _DATA_CACHE[k]


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message (with its type unless it is a salspike error)."""
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    return msg if isinstance(exc, (ConfigError, DivergenceError)) or type(exc).__name__ in msg \
        else f"{type(exc).__name__}: {msg}"


def record_failure(folder: str, key: str, status: str, error: str) -> None:
    """Write ``failed.json`` (key, status, one-line error) in a point's folder."""
    atomic_write_json(os.path.join(folder, "failed.json"), {"key": key, "status": status, "error": error})


def run_point(task: dict) -> dict:
    """Train one point (a task dict from :func:`_task`) into its folder; never raises for the point's own
    errors: returns ``{"status": "done" | "diverged" | "error", "error": ...}`` and, on failure, writes
    ``failed.json``.  Runs on a dask worker (or in-process for serial sweeps)."""
    from .training import train

    folder, key = task["folder"], task["key"]
    os.makedirs(folder, exist_ok=True)
    try:
        os.unlink(os.path.join(folder, "failed.json"))  # about an earlier attempt
    except FileNotFoundError:
        pass
    atomic_write_json(os.path.join(folder, "point.json"),
                      {"key": key, "coords": task["coords"], "seed": task["seed"], "config": task["config"]})
    t0 = time.perf_counter()
    try:
        circuit = Circuit.load(task["model"], task["overrides"])
        data = _dataset(task["dataset"], task["data_root"], circuit["seed"], task["n_train"], task.get("val_size"))
        summary = train(circuit, data, folder, level=task["level"], resume=True, progress=False,
                        level_options=task["level_options"], log=lambda *a: None)
        return {"status": "done", "error": None, "final_test_accuracy": summary["final_test_accuracy"],
                "seconds": time.perf_counter() - t0}
    except Exception as exc:  # noqa: BLE001 - any failure of a point is recorded, the sweep goes on
        status = "diverged" if isinstance(exc, DivergenceError) else "error"
        error = _one_line(exc)
        record_failure(folder, key, status, error)
        return {"status": status, "error": error, "seconds": time.perf_counter() - t0}


def _task(pt: Point, spec: SweepSpec, model: Path) -> dict:
    """The plain (picklable) dict that :func:`run_point` gets for one point."""
    return {"folder": pt.folder, "key": pt.key, "coords": pt.coords, "seed": pt.seed, "config": pt.config,
            "model": str(model), "overrides": pt.overrides, "dataset": spec.dataset, "data_root": spec.data_root,
            "n_train": spec.n_train, "val_size": spec.val_size, "level": spec.level,
            "level_options": level_options(spec)}


# --------------------------------------------------------------------------- where points run


def jobqueue_cluster(cluster: dict):
    """A dask-jobqueue SLURMCluster or PBSCluster from a [cluster] table (``kind`` = slurm or pbs; the other
    keys except ``jobs`` are its keyword arguments; ``cores`` defaults to 1, ``memory`` to "4GB",
    ``processes`` to ``cores`` (single-threaded workers)).  Not yet scaled: see :func:`open_client`."""
    try:
        import dask_jobqueue
    except ImportError:  # pragma: no cover
        raise ConfigError("cluster kind slurm/pbs needs dask-jobqueue: pip install dask-jobqueue") from None
    kwargs = {k: v for k, v in cluster.items() if k in JOBQUEUE_KEYS}
    kwargs.setdefault("cores", 1)
    kwargs.setdefault("memory", "4GB")
    kwargs.setdefault("processes", kwargs["cores"])
    cls = dask_jobqueue.SLURMCluster if cluster["kind"] == "slurm" else dask_jobqueue.PBSCluster
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[cluster] {cluster['kind']}: {exc}") from None


def describe_cluster(cluster: dict) -> str:
    """Where a [cluster] table runs the points, in words."""
    kind = cluster["kind"]
    if kind == "serial" or (kind == "local" and cluster.get("workers") == 0):
        return "in this process (serial, no dask)"
    if kind == "local":
        return f"a dask LocalCluster of {cluster.get('workers') or _cores()} single-threaded worker processes"
    if kind == "scheduler":
        return f"the dask scheduler at {cluster['address']}"
    return f"{kind.upper()} jobs through dask-jobqueue ({cluster.get('jobs', 1)} jobs)"


def _cores() -> int:
    """Cores this process may use (the default number of LocalCluster workers)."""
    from .training import available_cores

    return available_cores()


def is_serial(cluster: dict) -> bool:
    """True when the points run in this process without dask (kind "serial", or local with 0 workers)."""
    return cluster["kind"] == "serial" or (cluster["kind"] == "local" and cluster.get("workers") == 0)


def open_client(cluster: dict):
    """``(client, cluster_object_or_None)`` for a non-serial [cluster] table: a LocalCluster (processes,
    one thread each, ``workers`` default = cores), an existing scheduler, or a scaled jobqueue cluster."""
    import logging

    from dask.distributed import Client, LocalCluster

    kind = cluster["kind"]
    if kind == "scheduler":
        try:
            return Client(cluster["address"], timeout="20s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"cannot reach the dask scheduler at {cluster['address']!r} ({exc}): start it "
                              "(dask scheduler) or check --scheduler") from None
    if kind == "local":
        lc = LocalCluster(n_workers=cluster.get("workers") or _cores(), threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=logging.ERROR)
    else:
        lc = jobqueue_cluster(cluster)
        lc.scale(jobs=cluster.get("jobs", 1))
    return Client(lc), lc


def _execute(tasks: list[dict], cluster: dict, on_result: Callable[[dict, dict], None]) -> None:
    """Run ``run_point`` on every task where ``cluster`` says; ``on_result(task, result)`` as each ends.
    A worker that dies (or any error outside the point) is a result with status "crashed"."""
    if is_serial(cluster):
        for t in tasks:
            on_result(t, run_point(t))
        return
    from dask.distributed import as_completed

    client, lc = open_client(cluster)
    try:
        futures = {client.submit(run_point, t, key=f"salspike-point-{t['key']}", pure=False): t for t in tasks}
        for fut in as_completed(futures):
            t = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the point crashed its worker
                res = {"status": "crashed", "error": _one_line(exc)}
                try:
                    record_failure(t["folder"], t["key"], "crashed", res["error"])
                except OSError:
                    pass
            on_result(t, res)
    finally:
        client.close()
        if lc is not None:
            lc.close()


# --------------------------------------------------------------------------- gathering


def _read_metrics(folder: str) -> list[dict]:
    """The complete records of a point's metrics.jsonl ([] without one); read without taking its lock."""
    try:
        data = Path(folder, RunDir.METRICS).read_bytes()
    except OSError:
        return []
    out = []
    for line in data.split(b"\n"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def metric_names(metrics: list[str], n_layers: int) -> list[str]:
    """Variable names: epoch metrics as they are, layer metrics as ``<name>_layer<k>``."""
    names = []
    for m in metrics:
        names.extend([m] if m in EPOCH_METRICS else [f"{m}_layer{k}" for k in range(n_layers)])
    return names


def _record_values(rec: dict, metrics: list[str]) -> dict:
    """Variable name -> value of the collected metrics in one metrics.jsonl record."""
    vals = {m: rec.get(m) for m in metrics if m in EPOCH_METRICS}
    for layer in rec.get("layers") or []:
        for m in metrics:
            if m in LAYER_METRICS:
                vals[f"{m}_layer{layer.get('layer')}"] = layer.get(m)
    return vals


def _coord_array(values: list):
    """A grid axis as a coordinate array: numbers stay numbers, anything else (lists: JSON) becomes text."""
    vals = [coord_value(v) for v in values]
    if all(isinstance(v, bool) for v in vals):
        return np.array(vals, dtype=bool)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return np.array(vals)
    return np.array([v if isinstance(v, str) else json.dumps(v) for v in vals], dtype=object)


def gather(points: list[Point], spec: SweepSpec, seeds: list[int]):
    """An xarray Dataset of every point's per-epoch metrics: dims = grid keys, ``seed``, ``epoch``; variables =
    the metrics (NaN where a point failed or did not reach that epoch), ``status``, ``error``, ``key`` and
    ``folder`` per (grid point, seed)."""
    import xarray as xr

    keys = list(spec.grid)
    shape = [len(spec.grid[k]) for k in keys] + [len(seeds)]
    histories, n_layers, n_epochs = {}, 0, 0
    for pt in points:
        recs = _read_metrics(pt.folder) if pt.status == "done" else []
        histories[id(pt)] = recs
        n_epochs = max(n_epochs, len(recs), (pt.config or {}).get("epochs") or 0)
        for r in recs:
            n_layers = max(n_layers, len(r.get("layers") or []))
    names = metric_names(spec.metrics, n_layers)
    data = {n: np.full(shape + [n_epochs], np.nan) for n in names}
    status = np.full(shape, "", dtype=object)
    error = np.full(shape, "", dtype=object)
    keyarr = np.full(shape, "", dtype=object)
    folder = np.full(shape, "", dtype=object)
    for pt in points:
        idx = pt.index
        status[idx], error[idx] = pt.status, pt.error or ""
        keyarr[idx], folder[idx] = pt.key, os.path.relpath(pt.folder, spec.out)
        for rec in histories[id(pt)]:
            e = int(rec.get("epoch", 0)) - 1
            if not 0 <= e < n_epochs:
                continue
            for n, v in _record_values(rec, spec.metrics).items():
                if n in data and isinstance(v, (int, float)) and not isinstance(v, bool):
                    data[n][idx + (e,)] = float(v)
    dims = keys + ["seed"]
    coords = {k: _coord_array(spec.grid[k]) for k in keys}
    coords.update(seed=np.array(seeds, dtype=np.int64), epoch=np.arange(1, n_epochs + 1, dtype=np.int64))
    variables = {n: (dims + ["epoch"], a) for n, a in data.items()}
    variables.update(status=(dims, status.astype(str)), error=(dims, error.astype(str)),
                     key=(dims, keyarr.astype(str)), folder=(dims, folder.astype(str)))
    ds = xr.Dataset(variables, coords=coords)
    for k in keys:
        if SCHEMA.get(k, (None,))[0] is list or any(isinstance(v, (list, dict)) for v in spec.grid[k]):
            ds[k].attrs["encoding"] = "JSON text of the list value"
    prov = provenance()
    ds.attrs.update({f"provenance_{k}": (json.dumps(v) if not isinstance(v, (str, int, float)) or isinstance(v, bool)
                                         else v) for k, v in prov.items()})
    ds.attrs["provenance"] = dumps_json(prov, None)
    ds.attrs["sweep"] = dumps_json(spec_dict(spec), None)
    ds.attrs["title"] = "salspike sweep: per-epoch metrics of each (grid point, seed)"
    return ds


def write_netcdf(ds, path) -> None:
    """Write ``ds`` as netCDF (h5netcdf) atomically: a temp file in the same folder, then os.replace."""
    atomic_write_path(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))


def _stats(values: list[float]) -> dict:
    """Mean, sample standard deviation (ddof=1, None below two values) and count of the finite values."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    n = len(vals)
    return {"mean": float(np.mean(vals)) if n else None,
            "std": float(np.std(vals, ddof=1)) if n >= 2 else None, "n": n}


def summary_table(ds, spec: SweepSpec) -> list[dict]:
    """Per grid point: seeds, statuses and, for every metric variable, the mean and SAMPLE standard deviation
    (ddof=1; None with fewer than two finished seeds) over the finished seeds of its final-epoch value."""
    keys = list(spec.grid)
    names = [v for v in ds.data_vars if "epoch" in ds[v].dims]
    rows = []
    for combo in itertools.product(*(range(len(spec.grid[k])) for k in keys)):
        sel = ds.isel(dict(zip(keys, combo)))
        coords = {k: spec.grid[k][i] for k, i in zip(keys, combo)}
        statuses = [str(s) for s in sel["status"].values]
        row = {"point": ",".join(f"{k}={_value_label(v)}" for k, v in coords.items()) or "base", "coords": coords,
               "seeds": [int(s) for s in sel["seed"].values], "status": statuses,
               "n_done": statuses.count("done"), "n_failed": sum(s not in ("done", "pending") for s in statuses),
               "metrics": {}}
        for name in names:
            finals = []
            for si, st in enumerate(statuses):
                series = sel[name].values[si]
                ok = series[np.isfinite(series)]
                finals.append(float(ok[-1]) if st == "done" and ok.size else None)
            row["metrics"][name] = _stats(finals)
        rows.append(row)
    return rows


def spec_dict(spec: SweepSpec) -> dict:
    """The specification as a plain dict (for sweep.json and the netCDF attributes)."""
    d = dataclasses.asdict(spec)
    d.pop("base_dir")
    return d


# --------------------------------------------------------------------------- the sweep


def run_sweep(spec: SweepSpec, *, retry_failed: bool = False, log=note) -> dict:
    """Run every pending point of ``spec`` where ``spec.cluster`` says, then write ``OUT/sweep.nc`` and
    ``OUT/sweep.json``; returns ``{"table": ..., "rows": ..., "netcdf": path, "counts": ...}``.

    Finished points are skipped; recorded failures too unless ``retry_failed``.  The sweep folder is locked
    while the sweep runs (a second sweep on it is refused)."""
    check_spec(spec)
    if not spec.out:
        raise ConfigError("no sweep folder: pass --out FOLDER or set out = \"...\" in the sweep file")
    model = _resolve_model(spec)
    out = Path(spec.out).resolve()
    points = plan_points(spec, model, out)  # validates everything before the folder is made
    seeds = list(dict.fromkeys(p.seed for p in points))
    if not spec.seeds:
        spec.seeds = seeds
    with RunDir(out, resume=True):  # the lock: one sweep at a time in a folder
        planned_failures = [p for p in points if p.status == "error"]
        for p in planned_failures:
            os.makedirs(p.folder, exist_ok=True)
            atomic_write_json(os.path.join(p.folder, "point.json"), {"key": p.key, "coords": p.coords,
                                                                     "seed": p.seed, "config": None})
            record_failure(p.folder, p.key, "error", p.error)
        by_key: dict[str, list[Point]] = {}
        for p in points:
            if p.status == "pending":
                p.status, p.error = point_state(p.folder, p.key)
                if p.status not in ("done", "pending") and retry_failed:
                    p.status, p.error = "pending", None
            by_key.setdefault(p.key, []).append(p)
        todo = [ps[0] for ps in by_key.values() if ps[0].status == "pending"]
        n_done = sum(p.status == "done" for p in points)
        log(f"sweep: {len(points)} runs ({n_done} finished, {len(points) - n_done - len(todo)} failed before, "
            f"{len(todo)} to run) on {describe_cluster(spec.cluster)}; results in {out}")
        tasks = [_task(p, spec, model) for p in todo]
        with progress(len(tasks), "sweep", unit="point") as bar:
            def on_result(task, res):
                for p in by_key[task["key"]]:
                    p.status, p.error = res["status"], res.get("error")
                bar.update()
                if res["status"] != "done":
                    log(f"sweep: point {os.path.basename(task['folder'])} {res['status']}: {res.get('error')}")
            if tasks:
                _execute(tasks, spec.cluster, on_result)
        ds = gather(points, spec, spec.seeds)
        table = summary_table(ds, spec)
        rows = [{"coords": p.coords, "seed": p.seed, "key": p.key, "folder": os.path.relpath(p.folder, out),
                 "status": p.status, "error": p.error} for p in points]
        nc = out / "sweep.nc"
        write_netcdf(ds, nc)
        counts = {s: sum(p.status == s for p in points) for s in dict.fromkeys(p.status for p in points)}
        atomic_write_json(out / "sweep.json", {"sweep": spec_dict(spec), "counts": counts, "table": table,
                                               "rows": rows, "provenance": provenance()})
    return {"table": table, "rows": rows, "netcdf": str(nc), "counts": counts}
