"""Time a SAL mini-batch step against a plain numpy BP step of the same network, side by side.

Batch 256, widths 784-1000-1000-1000-10, downstream ratio 1 and 5, float32 and float64.
Prints the SAL/BP time ratio next to the FLOP ratio, and the achieved GFLOP/s of the SAL step
against a numpy matrix product of the same sizes measured in the same run.

Targets (issue 2): SAL/BP time ratio no worse than the FLOP ratio (about 8/3 at ratio 1);
SAL at >= 70% of the measured matrix-product rate.

    python benchmarks/matrix_step.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from salspike.circuit import Circuit
from salspike.matrix.engine import MatrixNetwork

WIDTHS = [784, 1000, 1000, 1000, 10]
BATCH = 256


def plain_bp_step(W, x, y, eta):
    """Textbook numpy backprop for an MSE ReLU MLP (independent of salspike)."""
    hs, acts = [x], []
    for k, w in enumerate(W):
        a = hs[-1] @ w.T
        acts.append(a)
        hs.append(np.maximum(a, 0) if k < len(W) - 1 else a)
    delta = y - hs[-1]
    for k in range(len(W) - 1, -1, -1):
        grad = delta.T @ hs[k]
        if k > 0:
            delta = (delta @ W[k]) * (acts[k - 1] > 0)
        grad *= eta / x.shape[0]
        W[k] += grad


def flops_forward(d, n):
    return sum(2 * n * d[k] * d[k + 1] for k in range(len(d) - 1))


def flops_bp(d, n):
    K = len(d) - 1
    return flops_forward(d, n) + sum(2 * n * d[k] * d[k + 1] for k in range(1, K)) + flops_forward(d, n)


def flops_sal(d, db, n):
    """Forward, downstream Wbar hbar, Vbar hbar, dW, V h, dV, dWbar, dVbar."""
    K = len(d) - 1
    f = flops_forward(d, n)
    f += sum(2 * n * db[k] * db[k + 1] for k in range(1, K))  # downstream pass
    f += sum(2 * n * d[k + 1] * db[k + 1] for k in range(K - 1))  # apical Vbar hbar
    f += flops_forward(d, n)  # dW outer products
    f += sum(2 * n * db[k] * d[k] for k in range(1, K)) * 2  # V h (lateral), dV
    f += sum(2 * n * db[k] * db[k + 1] for k in range(1, K))  # dWbar
    f += sum(2 * n * d[k + 1] * db[k + 1] for k in range(K - 1))  # dVbar
    return f


def interleaved(fns, repeats):
    """Time several functions alternately so that machine noise hits them alike."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [float(np.min(t)) for t in times]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads for all three (default 1: stable on a shared machine; 0 = no limit)")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads or None, user_api="blas"):
        run(args)


def run(args):
    rng = np.random.default_rng(0)
    print(f"BLAS threads: {args.threads or 'all'}, batch {BATCH}, widths {WIDTHS}")
    print(f"{'dtype':8s} {'ratio':>5s} {'SAL ms':>8s} {'BP ms':>8s} {'time x':>7s} {'FLOP x':>7s} "
          f"{'SAL GF/s':>9s} {'matmul GF/s':>11s} {'of matmul':>9s}")
    for dtype in ("float32", "float64"):
        for ratio in (1.0, 5.0):
            c = Circuit.from_dict({"hidden": WIDTHS[1:-1], "input_width": WIDTHS[0], "output_width": WIDTHS[-1],
                                   "downstream_ratio": ratio, "dtype": dtype,
                                   "eta": {"W": 1e-4, "Wbar": 1e-6, "V": 1e-6, "Vbar": 1e-6}})
            net = MatrixNetwork(c)
            x = rng.standard_normal((BATCH, WIDTHS[0])).astype(dtype)
            y = rng.standard_normal((BATCH, WIDTHS[-1])).astype(dtype)
            W = [net.weights[f"W{k}"].copy() for k in range(4)]
            a = rng.standard_normal((BATCH, 1000)).astype(dtype)
            b = rng.standard_normal((1000, 1000)).astype(dtype)
            t_sal, t_bp, t_mm = interleaved([lambda: net.step(x, y), lambda: plain_bp_step(W, x, y, 1e-4),
                                             lambda: a @ b], args.repeats)
            mm = 2 * BATCH * 1000 * 1000 / t_mm / 1e9
            f_sal = flops_sal(c.widths, c.downstream_widths, BATCH)
            f_bp = flops_bp(c.widths, BATCH)
            rate = f_sal / t_sal / 1e9
            print(f"{dtype:8s} {ratio:5.0f} {t_sal * 1e3:8.2f} {t_bp * 1e3:8.2f} {t_sal / t_bp:7.2f} "
                  f"{f_sal / f_bp:7.2f} {rate:9.1f} {mm:11.1f} {rate / mm:9.0%}")


if __name__ == "__main__":
    main()
