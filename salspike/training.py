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

from .circuit import Circuit
from .datasets import Dataset
from .errors import ConfigError, DivergenceError
from .levels import make_level
from .matrix.engine import MatrixNetwork
from .metrics import evaluate, layer_metrics
from .results import RunDir, atomic_write_text, provenance


def _progress(total, desc, enabled):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        enabled = False
    if not enabled:
        class _Null:
            def update(self, n=1): ...
            def set_postfix(self, **kw): ...
            def close(self): ...
        return _Null()
    return tqdm(total=total, desc=desc, unit="batch", leave=False, file=sys.stderr)


def epoch_metrics(circuit: Circuit, weights: dict, data: Dataset, probe: int) -> dict:
    """Loss and accuracy on both splits, and the per-layer alignment metrics on a probe batch."""
    net = MatrixNetwork(circuit, weights)
    train = evaluate(net, data.x_train, data.y_train, data.labels_train)
    test = evaluate(net, data.x_test, data.y_test, data.labels_test)
    n = min(probe, data.x_train.shape[0])
    return {"train_loss": train["loss"], "train_accuracy": train["accuracy"],
            "test_loss": test["loss"], "test_accuracy": test["accuracy"],
            "layers": layer_metrics(net, data.x_train[:n], data.y_train[:n])}


def blas_threads(circuit: Circuit) -> int | None:
    """Threads for BLAS: the model's setting, or 1 for small layers (multithreaded BLAS on
    200-unit layers was measured 100x slower on a loaded 2-core machine), else no limit."""
    n = circuit["training.blas_threads"]
    if n > 0:
        return n
    widest = max(max(circuit.widths), max(w for w in circuit.downstream_widths if w))
    return 1 if widest < 512 else None


def train(circuit: Circuit, data: Dataset, out: str | None = None, *, level: str = "matrix",
          epochs: int | None = None, resume: bool = False, force: bool = False, progress: bool | None = None,
          level_options: dict | None = None, log=print) -> dict:
    """Train `circuit` on `data`; return the summary (also written to ``out/summary.json``).

    ``out`` is locked for the run (see :class:`~salspike.results.RunDir`).  ``resume`` continues
    an interrupted run there; it is refused when the settings differ from the saved config.json
    (more ``epochs`` are allowed) unless ``force``.
    """
    from threadpoolctl import threadpool_limits

    circuit = circuit.with_io_widths(data.input_width, data.output_width)
    run = RunDir(out, resume=resume) if out is not None else None
    try:
        with threadpool_limits(limits=blas_threads(circuit), user_api="blas"):
            return _train(circuit, data, run, level=level, epochs=epochs, resume=resume, force=force,
                          progress=progress, level_options=level_options, log=log)
    finally:
        if run is not None:
            run.close()


def _train(circuit, data, run, *, level, epochs, resume, force, progress, level_options, log) -> dict:
    data = data.astype(circuit.dtype)
    epochs = circuit["training.epochs"] if epochs is None else epochs
    batch = circuit["training.batch_size"]
    online = circuit["training.online"] or level != "matrix"
    progress = sys.stderr.isatty() if progress is None else progress
    order_rng = np.random.default_rng([circuit["seed"], 2])
    start_epoch, weights, history = 0, None, []
    if run is not None:
        config = {"model": circuit.to_dict(), "level": level, "dataset": data.name,
                  "dataset_sizes": {"train": len(data.x_train), "test": len(data.x_test)},
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
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            perm = order_rng.permutation(data.x_train.shape[0])
            steps = range(0, len(perm), batch)
            bar = _progress(len(steps), f"epoch {epoch + 1}/{epochs}", progress)
            for step_i, i in enumerate(steps):
                idx = perm[i:i + batch]
                lvl.step(data.x_train[idx], data.y_train[idx], online=online)
                lvl.check_health(f" at epoch {epoch + 1}, step {step_i + 1}")
                bar.update()
            bar.close()
            t1 = time.perf_counter()
            record = {"epoch": epoch + 1, **epoch_metrics(circuit, lvl.weights, data, circuit["training.eval_batch"]),
                      "epoch_s": t1 - t0}
            timings["train_s"] += t1 - t0
            timings["eval_s"] += time.perf_counter() - t1
            history.append(record)
            if run is not None:
                run.append_metrics(record)
                run.checkpoint(dict(lvl.weights), {"epoch": epoch + 1, "order_rng": order_rng.bit_generator.state})
            log(f"epoch {epoch + 1:3d}/{epochs}  train loss {record['train_loss']:.4f}  "
                f"test acc {record['test_accuracy']:.4f}  "
                f"delta angles {[round(m['delta_angle'], 1) for m in record['layers']]}")
    except DivergenceError as exc:
        if run is not None:
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
        raise
    finally:
        lvl.close()
    final = history[-1] if history else epoch_metrics(circuit, lvl.weights, data, circuit["training.eval_batch"])
    summary = {"final_test_accuracy": final["test_accuracy"], "final_train_accuracy": final["train_accuracy"],
               "final_test_loss": final["test_loss"], "epochs": epochs, "level": level,
               "algorithm": circuit["algorithm"], "dataset": data.name, "seed": circuit["seed"],
               "timings": timings, "provenance": provenance()}
    if run is not None:
        run.save_arrays("weights.npz", **lvl.weights)
        run.finish(summary)
    return summary
