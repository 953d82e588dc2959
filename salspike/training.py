"""Training on a dataset at any level, with per-epoch metrics, checkpoints and resume.

Every epoch ends with an atomic checkpoint (weights, data-order RNG state, epoch) and one
line of ``metrics.jsonl``; ``summary.json`` marks a finished run.  A divergence (NaN, inf or a
weight norm above ``divergence_limit``) stops the run with a message naming the epoch, step,
layer and group; the last good state stays in ``checkpoint.npz`` and ``diverged.json`` says
what happened (before the first epoch ends there is no checkpoint: initial weights are not
saved, the seed recreates them).  The results folder is locked while a run writes it, and
``resume`` first checks the settings against the saved ``config.json``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from .circuit import Circuit, init_weights
from .datasets import Dataset
from .console import note as _note
from .console import progress as _progress_bar
from .errors import ConfigError, DivergenceError
from .levels import Level, make_level
from .metrics import evaluate, layer_metrics
from .results import RunDir, atomic_write_text, provenance


def _predict_all(level: Level, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    return np.concatenate([level.predict(x[i:i + batch]) for i in range(0, x.shape[0], batch)])


def epoch_metrics(level: Level, data: Dataset, probe: int, initial: dict | None = None) -> dict:
    """Loss and accuracy on every split (train, validation when the data has one, test), and the
    per-layer alignment metrics on a probe batch, all from the level's own outputs and activities
    (plain arrays, `salspike.metrics`).  Tune on ``val_*``, never on ``test_*``."""
    loss = level.circuit["loss"]
    out = {}
    splits = [("train", data.x_train, data.y_train, data.labels_train)]
    if data.has_validation:
        splits.append(("val", data.x_val, data.y_val, data.labels_val))
    splits.append(("test", data.x_test, data.y_test, data.labels_test))
    for split, x, y, labels in splits:
        res = evaluate(_predict_all(level, x), y, labels, loss)
        out[f"{split}_loss"], out[f"{split}_accuracy"] = res["loss"], res["accuracy"]
    n = min(probe, data.x_train.shape[0])
    acts = level.activities(data.x_train[:n], data.y_train[:n])
    out["layers"] = layer_metrics(level.weights, acts, level.circuit["upstream_nonlinearity"], initial)
    return out


# Multiply-adds of the largest matrix product in one training step (batch x weight size) from
# which the automatic rule uses all available cores for BLAS; below it, one thread.  Measured with
# benchmarks/blas_threads.py (docs/training.md): on a loaded 2-core machine two threads made every
# batch-32 step slower (6-20x, paper MLP at downstream ratio 1-10, products up to 1.3e8 MACs) and
# broke about even only at 1e9 MACs (a 1000^3 product).
BLAS_THREADS_MIN_MACS = 1e9


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def blas_threads(circuit: Circuit) -> int:
    """Threads for BLAS: the model's setting (at most the available cores), or, when it is 0
    (auto), 1 unless one step's largest matrix product (batch x rows x columns of the widest
    weight) reaches `BLAS_THREADS_MIN_MACS`, then all available cores."""
    cores = available_cores()
    n = circuit["training.blas_threads"]
    if n > 0:
        return min(n, cores)
    batch = 1 if circuit["training.online"] else circuit["training.batch_size"]
    largest = batch * max(rows * cols for rows, cols in circuit.shapes().values())
    return cores if largest >= BLAS_THREADS_MIN_MACS else 1


def train(circuit: Circuit, data: Dataset, out: str | None = None, *, level: str = "matrix",
          epochs: int | None = None, resume: bool = False, force: bool = False, progress: bool | None = None,
          level_options: dict | None = None, log=print, record: list[str] | None = None) -> dict:
    """Train `circuit` on `data`; return the summary (also written to ``out/summary.json``).

    ``record``: recordings ``"TARGET:VARIABLE[@DT_MS]"`` (e.g. ``h1:spikes``, ``h2:rate``,
    ``W0:w@100``) at the time-resolved levels, saved per epoch as
    ``recordings/epoch_NNN.npz`` in ``out`` (keys ``<target>_<variable>_<field>``).

    ``out`` is locked for the run (see :class:`~salspike.results.RunDir`).  ``resume`` continues
    an interrupted run there; it is refused when the settings differ from the saved config.json
    (more ``epochs`` are allowed) unless ``force``.
    """
    from threadpoolctl import threadpool_limits

    circuit = circuit.with_io_widths(data.input_width, data.output_width)
    from .levels import get_level

    if get_level(level).INPUTS_ARE_RATES and (np.any(data.x_train < 0) or np.any(data.x_test < 0)):
        raise ConfigError(f"the {level} level encodes inputs as firing rates, but {data.name} has negative inputs "
                          f"(min {float(min(data.x_train.min(), data.x_test.min())):g}); use a data set scaled to "
                          "[0, 1] (digits, mnist, mnist5k, ...) or another level")
    run = RunDir(out, resume=resume) if out is not None else None
    try:
        with threadpool_limits(limits=blas_threads(circuit), user_api="blas"):
            return _train(circuit, data, run, level=level, epochs=epochs, resume=resume, force=force,
                          progress=progress, level_options=level_options, log=log, record=record or [])
    finally:
        if run is not None:
            run.close()


def parse_record(spec: str) -> tuple[str, str, float | None]:
    """'h1:spikes' -> ('h1', 'spikes', None); 'W0:w@100' -> ('W0', 'w', 100.0)."""
    target, sep, rest = spec.partition(":")
    variable, _, dt = rest.partition("@")
    if not sep or not target or not variable:
        raise ConfigError(f"--record {spec!r}: expected TARGET:VARIABLE[@DT_MS], e.g. h1:spikes, h2:rate or W0:w@100")
    try:
        dt_ms = float(dt) if dt else None
    except ValueError:
        raise ConfigError(f"--record {spec!r}: the interval after '@' must be a number of ms") from None
    return target, variable, dt_ms


class _Recorder:
    """Collects a level's recordings over the steps of an epoch and saves them in the run folder."""

    def __init__(self, level: Level, specs: list[str]):
        self.level = level
        self.keys = []
        for spec in specs:
            target, variable, dt_ms = parse_record(spec)
            self.keys.append((spec, level.record(target, variable, dt_ms)))
        self.data: dict[str, list] = {}

    def collect(self) -> None:
        for spec, key in self.keys:
            for field, v in self.level.recordings.get(key, {}).items():
                self.data.setdefault(f"{spec.split('@')[0].replace(':', '_')}_{field}", []).append(v)

    def save(self, run, epoch: int) -> None:
        if not self.keys:
            return
        arrays = {k: np.concatenate(v) for k, v in self.data.items()}
        os.makedirs(run.file("recordings"), exist_ok=True)
        run.save_arrays(os.path.join("recordings", f"epoch_{epoch:03d}"), **arrays)
        self.data = {}


def _train(circuit, data, run, *, level, epochs, resume, force, progress, level_options, log, record) -> dict:
    data = data.astype(circuit.dtype)
    epochs = circuit["training.epochs"] if epochs is None else epochs
    batch = circuit["training.batch_size"]
    online = circuit["training.online"] or level != "matrix"
    if online and not circuit["training.online"] and batch > 1:
        _note(f"the {level} level updates once per trial (online); this model's learning rates (eta.W = "
              f"{circuit['eta.W']:g}) were chosen for batch-{batch} means, so each row weighs {batch}x more "
              "here: see docs/training.md, 'Online learning rates', for rates validated online")
    progress = sys.stderr.isatty() if progress is None else progress
    order_rng = np.random.default_rng([circuit["seed"], 2])
    start_epoch, weights, history = 0, None, []
    if run is not None:
        config = {"model": circuit.to_dict(), "level": level, "dataset": data.name,
                  "dataset_sizes": {"train": len(data.x_train), "test": len(data.x_test),
                                    **({"val": len(data.x_val)} if data.has_validation else {})},
                  "source": circuit.source, "level_options": level_options or {}, "epochs": epochs}
        if resume:  # read and check everything before writing anything
            found = run.latest_checkpoint()
            if found is not None:
                weights, meta = found
                try:
                    start_epoch = int(meta["epoch"])
                    order_rng.bit_generator.state = meta["order_rng"]
                except (KeyError, TypeError, ValueError):
                    raise run.unreadable_checkpoint() from None
            history = run.read_metrics()[:start_epoch]
            if len(history) < start_epoch:
                raise ConfigError(f"{run.METRICS} in {run.path} has {len(history)} records but "
                                  f"{run.CHECKPOINT} is at epoch {start_epoch}: delete {run.CHECKPOINT} "
                                  "to rerun from epoch 1 with --resume, or start a new --out")
            run.check_resume(config, epochs_done=start_epoch, force=force,
                             ignore=("source", "model.training.epochs"))
    lvl = make_level(level, circuit, weights, **(level_options or {}))
    if record and run is None:
        lvl.close()
        raise ConfigError("--record needs a results folder (--out)")
    try:
        recorder = _Recorder(lvl, record)
    except BaseException:
        lvl.close()
        raise
    # the run's starting weights (a resumed run started from the seed's), for the drift metrics
    initial = {k: np.array(v, copy=True) for k, v in lvl.weights.items()} if weights is None else init_weights(circuit)
    if run is not None:
        try:
            run.write_json(run.CONFIG, config)
            atomic_write_text(run.file("model.toml"), circuit.to_toml())
            if resume and os.path.exists(run.file(run.METRICS)):
                run.trim_metrics(start_epoch)
            if os.path.exists(run.file("diverged.json")):
                os.unlink(run.file("diverged.json"))  # about an earlier attempt, not this one
        except BaseException:
            lvl.close()
            raise
        if start_epoch:
            log(f"resuming {run.path} after epoch {start_epoch}")
    timings = {"train_s": 0.0, "eval_s": 0.0}
    steps_per_epoch = -(-data.x_train.shape[0] // batch)
    bar = _progress_bar(epochs * steps_per_epoch, "training", unit="batch", enabled=progress,
                        initial=start_epoch * steps_per_epoch)
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            perm = order_rng.permutation(data.x_train.shape[0])
            bar.set_description(f"epoch {epoch + 1}/{epochs}")
            for step_i, i in enumerate(range(0, len(perm), batch)):
                idx = perm[i:i + batch]
                lvl.step(data.x_train[idx], data.y_train[idx], online=online)
                recorder.collect()
                lvl.check_health(f" at epoch {epoch + 1}, step {step_i + 1}")
                bar.update()
            t1 = time.perf_counter()
            record = {"epoch": epoch + 1, **epoch_metrics(lvl, data, circuit["training.eval_batch"], initial),
                      "epoch_s": t1 - t0}
            timings["train_s"] += t1 - t0
            timings["eval_s"] += time.perf_counter() - t1
            history.append(record)
            if run is not None:
                recorder.save(run, epoch + 1)
                run.append_metrics(record)
                run.checkpoint(dict(lvl.weights), {"epoch": epoch + 1, "order_rng": order_rng.bit_generator.state})
            val = f"val acc {record['val_accuracy']:.4f}  " if "val_accuracy" in record else ""
            log(f"epoch {epoch + 1:3d}/{epochs}  train loss {record['train_loss']:.4f}  {val}"
                f"test acc {record['test_accuracy']:.4f}  "
                f"delta angles {[round(m['delta_angle'], 1) for m in record['layers']]}")
    except BaseException as exc:
        lvl.close()
        if run is None or not isinstance(exc, DivergenceError):
            raise
        ckpt = run.file(run.CHECKPOINT)
        if os.path.exists(ckpt):
            kept = f"Last good state (epoch {len(history)}) kept in {ckpt}"
        else:  # diverged before the first checkpoint; initial weights are not saved
            ckpt = None
            kept = ("No checkpoint exists: the run diverged before finishing an epoch (the initial "
                    "weights are not saved; the seed recreates them): lower the learning rates and start again")
        run.write_json("diverged.json", {"error": str(exc), "last_good_epoch": len(history),
                                         "checkpoint": ckpt, "message": kept})
        raise DivergenceError(f"{exc}. {kept}") from None
    finally:
        bar.close()
    try:
        final = history[-1] if history else epoch_metrics(lvl, data, circuit["training.eval_batch"], initial)
    finally:
        lvl.close()
    summary = {"final_test_accuracy": final["test_accuracy"], "final_train_accuracy": final["train_accuracy"],
               "final_test_loss": final["test_loss"], "final_val_accuracy": final.get("val_accuracy"),
               "final_val_loss": final.get("val_loss"), "epochs": epochs, "level": level,
               "algorithm": circuit["algorithm"], "dataset": data.name, "seed": circuit["seed"],
               "timings": timings, "provenance": provenance()}
    readout = getattr(lvl, "readout_info", None)
    if readout is not None:
        summary["readout"] = readout()
    if run is not None:
        run.save_arrays("weights.npz", **lvl.weights)
        run.finish(summary)
    return summary
