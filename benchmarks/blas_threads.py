"""BLAS threads 1 vs all for training the paper MLP, side by side in one run.

Three tables, each measured with interleaved repetitions (every configuration once per round,
so that machine noise hits them alike) and reported as medians:

* training steps (``MatrixNetwork.step`` on digits mini-batches, batch 32) of
  ``models/paper_mlp.toml`` at several downstream ratios, with the choice of the automatic rule
  (``salspike.training.blas_threads``);
* one training epoch through ``salspike.training.train(..., out=None)`` at ratio 1 and 5, with
  ``training.blas_threads`` = 1, all cores and 0 (auto);
* single matrix products of the sizes a batch-32 step uses (forward ``x @ W^T`` and the
  rank-32 weight update ``W += eta post^T pre`` as one scipy gemm, as in
  ``salspike.matrix.rules.accumulate_update``), and larger ones for reference.

"x" columns are time(all threads) / time(1 thread): above 1 means threads are slower.

    python benchmarks/blas_threads.py [--steps 10] [--repeats 5] [--ratios 1,2,5,10]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from threadpoolctl import ThreadpoolController

from salspike.circuit import Circuit
from salspike.datasets import load_digits
from salspike.matrix.engine import MatrixNetwork
from salspike.training import blas_threads, train

MODEL = "models/paper_mlp.toml"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "?"


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def interleaved(fns, repeats, controller, threads):
    """Median seconds of each fn(); fn i runs under a BLAS limit of threads[i] threads."""
    for fn, t in zip(fns, threads):  # warm up (thread pools, caches, lazy allocations)
        with controller.limit(limits=t, user_api="blas"):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, (fn, t) in enumerate(zip(fns, threads)):
            with controller.limit(limits=t, user_api="blas"):
                t0 = time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def paper_circuit(ratio: float, threads: int = 0) -> Circuit:
    return Circuit.load(MODEL, {"downstream_ratio": float(ratio),
                                "training.blas_threads": threads}).with_io_widths(64, 10)


def step_table(data, ratios, steps, repeats, controller, n_all):
    batch = 32
    n_batches = data.x_train.shape[0] // batch
    print(f"\n1) MatrixNetwork.step, {MODEL}, digits, batch {batch}, float64; median of {repeats} rounds "
          f"of {steps} steps")
    print(f"{'ratio':>5s} {'downstream':>22s} {'auto':>4s} {'1 thr ms/step':>13s} {f'{n_all} thr ms/step':>13s} "
          f"{'x':>6s} {'epoch 1 thr s':>13s} {f'epoch {n_all} thr s':>13s}")
    epoch_steps = -(-data.x_train.shape[0] // batch)
    for ratio in ratios:
        c = paper_circuit(ratio)
        nets = {t: MatrixNetwork(c) for t in (1, n_all)}
        pos = {t: 0 for t in nets}

        def run(t):
            net = nets[t]
            for _ in range(steps):
                i = pos[t] % n_batches
                pos[t] += 1
                net.step(data.x_train[i * batch:(i + 1) * batch], data.y_train[i * batch:(i + 1) * batch])

        t1, tn = interleaved([lambda: run(1), lambda: run(n_all)], repeats, controller, [1, n_all])
        t1, tn = t1 / steps, tn / steps
        auto = blas_threads(c) or "all"
        print(f"{ratio:5g} {str(c.downstream_widths[1:]):>22s} {auto!s:>4s} {t1 * 1e3:13.2f} {tn * 1e3:13.2f} "
              f"{tn / t1:6.2f} {t1 * epoch_steps:13.2f} {tn * epoch_steps:13.2f}")


def train_table(data, ratios, repeats, controller, n_all):
    print(f"\n2) salspike.training.train(..., out=None, epochs=1), training.blas_threads = 1 / {n_all} / 0 (auto); "
          f"median of {repeats}; train = the epoch's steps, eval = the epoch's metrics")
    print(f"{'ratio':>5s} {'auto':>4s} {'1 thr train s':>13s} {f'{n_all} thr train s':>13s} {'auto train s':>12s} "
          f"{'x':>6s} {'1 thr eval s':>12s} {f'{n_all} thr eval s':>12s}")
    for ratio in ratios:
        settings = (1, n_all, 0)
        results = {s: [] for s in settings}

        def run(s):
            summary = train(paper_circuit(ratio, s), data, out=None, epochs=1, progress=False, log=lambda *a: None)
            results[s].append(summary["timings"])

        # train() sets its own BLAS limit; the outer limit None leaves it alone
        interleaved([lambda s=s: run(s) for s in settings], repeats, controller, [None] * len(settings))
        med = {s: {k: float(np.median([r[k] for r in results[s][1:]])) for k in ("train_s", "eval_s")}
               for s in settings}
        auto = blas_threads(paper_circuit(ratio)) or "all"
        print(f"{ratio:5g} {auto!s:>4s} {med[1]['train_s']:13.2f} {med[n_all]['train_s']:13.2f} "
              f"{med[0]['train_s']:12.2f} {med[n_all]['train_s'] / med[1]['train_s']:6.2f} "
              f"{med[1]['eval_s']:12.2f} {med[n_all]['eval_s']:12.2f}")


def gemm_table(repeats, controller, n_all):
    from scipy.linalg import blas

    rng = np.random.default_rng(0)
    print(f"\n3) single float64 products, median of {repeats} rounds (each timing loops to >= ~0.2 GFLOP)")
    print(f"{'product':>34s} {'MACs':>9s} {'1 thr ms':>9s} {f'{n_all} thr ms':>9s} {'x':>6s} {'1 thr GF/s':>10s}")
    cases = []
    for n, d_in, d_out in [(32, 200, 200), (32, 1000, 200), (32, 1000, 1000), (32, 2000, 2000),
                           (256, 1000, 1000), (1000, 1000, 1000), (2000, 2000, 2000)]:
        cases.append(("forward", n, d_in, d_out))
        if n < d_in:
            cases.append(("update", n, d_in, d_out))
    for kind, n, d_in, d_out in cases:
        if kind == "forward":  # (n x d_in) @ (d_in x d_out)
            a, b = rng.standard_normal((n, d_in)), rng.standard_normal((d_in, d_out))
            fn = lambda a=a, b=b: a @ b
            label = f"forward ({n}x{d_in}) @ ({d_in}x{d_out})"
        else:  # w^T (d_in x d_out, F-ordered) += pre^T post, inner dimension n, as accumulate_update
            w = np.asfortranarray(rng.standard_normal((d_in, d_out)))
            pre_t = np.asfortranarray(rng.standard_normal((d_in, n)))
            post_t = np.asfortranarray(rng.standard_normal((d_out, n)))
            fn = lambda w=w, p=pre_t, q=post_t: blas.dgemm(1e-3, p, q, beta=1.0, c=w, trans_b=1, overwrite_c=1)
            label = f"update ({d_in}x{n}) @ ({n}x{d_out})"
        macs = n * d_in * d_out
        loops = max(1, int(1e8 / macs))

        def many(fn=fn, loops=loops):
            for _ in range(loops):
                fn()

        t1, tn = (t / loops for t in interleaved([many, many], repeats, controller, [1, n_all]))
        print(f"{label:>34s} {macs:9.2e} {t1 * 1e3:9.3f} {tn * 1e3:9.3f} {tn / t1:6.2f} {2 * macs / t1 / 1e9:10.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10, help="training steps per timing (table 1)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds (tables 1 and 3)")
    ap.add_argument("--train-repeats", type=int, default=3, help="interleaved train() epochs (table 2)")
    ap.add_argument("--ratios", default="1,2,5,10", help="downstream ratios of table 1")
    ap.add_argument("--train-ratios", default="1,5", help="downstream ratios of table 2")
    args = ap.parse_args()

    controller = ThreadpoolController()
    n_all = len(os.sched_getaffinity(0))
    print(f"machine: {cpu_name()}, {os.cpu_count()} cpus, {n_all} available to this process; "
          f"numpy {np.__version__}")
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    for info in controller.select(user_api="blas").info():
        print(f"BLAS: {info['internal_api']} {info.get('version')} ({info.get('architecture')}, "
              f"{info.get('threading_layer')}), default {info['num_threads']} threads, "
              f"{os.path.basename(info['filepath'])}")
    if coretype:
        print(f"OPENBLAS_CORETYPE={coretype}")
    print(f"load average at start: {load()}  (other jobs share the machine; all tables are interleaved)")
    data = load_digits(seed=0)
    step_table(data, [float(r) for r in args.ratios.split(",")], args.steps, args.repeats, controller, n_all)
    print(f"load average: {load()}")
    train_table(data, [float(r) for r in args.train_ratios.split(",")], args.train_repeats, controller, n_all)
    print(f"load average: {load()}")
    gemm_table(args.repeats, controller, n_all)
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
