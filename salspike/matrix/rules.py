"""The SAL circuit as linear algebra: the forward pass, the downstream pass and the four
plasticity rules, each a small function whose docstring states the equation it implements.

Batches are rows: an activity ``h`` has shape (n, d).  Updates average over the batch, so
``outer_mean(a, b) = a.T @ b / n`` is the batch mean of the outer products a_i b_i^T.
"""

from __future__ import annotations

import numpy as np

from ..circuit.functions import outer_mean, relu


def rule_update(post, pre, w, eta, decay_coef):
    """dw = eta <post pre^T>_batch - decay_coef w: the common form of all four rules (Eqs. 5-8),
    whose factors the ``*_factors`` functions give (no temporaries when decay is 0)."""
    out = outer_mean(post, pre, eta)
    if np.ndim(decay_coef) or decay_coef:
        out -= decay_coef * w
    return out


def oja_coefficient(post, eta):
    """The per-row decay of Oja's form, eta <post_i^2>_batch as a (d_post, 1) column: added to the
    decay coefficient it makes dw = eta (<post pre^T> - diag(<post^2>) w) - c w, which bounds each
    postsynaptic row's norm (interstream_rule = "oja", an extension of Eqs. 6 and 8)."""
    return eta * np.mean(np.square(post), axis=0)[:, None]


def forward(W: list[np.ndarray], x: np.ndarray, upstream: str = "relu"):
    """Upstream pass, Eq. 1 with D_u = diag(1[W h > 0]) (Eq. 3):
    a^{k+1} = W^k h^k, h^{k+1} = D_u a^{k+1} for hidden layers, h^K = a^K (linear output).
    Returns (h, a) with h[0] = x and a[0] = None."""
    h, a = [x], [None]
    K = len(W)
    for k in range(K):
        pre = h[k] @ W[k].T
        a.append(pre)
        h.append(relu(pre) if (k < K - 1 and upstream == "relu") else pre)
    return h, a


def downstream_gate(kind: str, h_k, V_k, drive):
    """D_d of Eq. 2 as a 0/1 (or all-ones) mask on the drive Wbar^k hbar^{k+1}:
    identity -> 1; relu_jacobian -> 1[V^k h^k > 0] (Eq. 4); relu -> 1[Wbar^k hbar^{k+1} > 0]."""
    if kind == "identity":
        return None
    if kind == "relu_jacobian":
        return (h_k @ V_k.T) > 0
    if kind == "relu":
        return drive > 0
    raise ValueError(f"unknown downstream nonlinearity {kind!r}")


def downstream(Wbar: list, V: list, h: list, hbar_top: np.ndarray, kind: str):
    """Downstream pass, Eq. 2: hbar^k = D_d(V^k h^k) Wbar^k hbar^{k+1}, k = K-1..1.
    Returns (hbar, drive): hbar[k] for k = 1..K (hbar[0] = None) and the pre-D_d drive
    Wbar^k hbar^{k+1} (drive[K] = None)."""
    K = len(h) - 1
    hbar = [None] * (K + 1)
    drive = [None] * (K + 1)
    hbar[K] = hbar_top
    for k in range(K - 1, 0, -1):
        u = hbar[k + 1] @ Wbar[k].T
        drive[k] = u
        gate = downstream_gate(kind, h[k], V[k], u)
        hbar[k] = u if gate is None else u * gate
    return hbar, drive


# Each rule is a batch-mean outer product minus a decay: dw = eta <post pre^T> - c w.  The
# functions below return its two factors (post, pre); `rule_update` forms dw and
# `accumulate_update` adds it into w in place with one BLAS call.

def W_factors(Vbar_k, hbar_next, h_k):
    """Eq. 5: dW^k = eta_W Vbar^k hbar^{k+1} (h^k)^T - gamma W^k (heterosynaptic: the apical
    input Vbar^k hbar^{k+1} of the postsynaptic neuron times the presynaptic rate h^k).
    Vbar_k None is the fixed output identity."""
    return (hbar_next if Vbar_k is None else hbar_next @ Vbar_k.T), h_k


def V_factors(signal_k, h_k):
    """Eq. 6: dV^k = eta_V hbar^k (h^k)^T - gamma V^k (Hebbian: post hbar^k x pre h^k).
    Algorithm 1 uses signal_k = Wbar^k hbar^{k+1} (before D_d) instead of hbar^k."""
    return signal_k, h_k


def Wbar_factors(V_k, h_k, hbar_next):
    """Eq. 7: d(Wbar^k)^T = eta hbar^{k+1} (V^k h^k)^T - gamma (Wbar^k)^T, i.e.
    dWbar^k = eta (V^k h^k)(hbar^{k+1})^T - gamma Wbar^k (heterosynaptic: the lateral input
    V^k h^k of the postsynaptic neuron times the presynaptic rate hbar^{k+1})."""
    return h_k @ V_k.T, hbar_next


def Vbar_factors(signal_next, hbar_next):
    """Eq. 8: d(Vbar^k)^T = eta hbar^{k+1} (h^{k+1})^T - gamma (Vbar^k)^T, i.e.
    dVbar^k = eta h^{k+1} (hbar^{k+1})^T - gamma Vbar^k (Hebbian: post h^{k+1} x pre hbar^{k+1}).
    Algorithm 1 uses signal_next = W^k h^k (before D_u) instead of h^{k+1}."""
    return signal_next, hbar_next


def accumulate_update(w: np.ndarray, post, pre, eta, decay_coef) -> None:
    """w <- (1 - decay_coef) w + eta <post pre^T>_batch, in place.  For C-ordered float32/64
    w this is one BLAS gemm on w^T (Fortran-ordered), with no temporary of w's size."""
    n = post.shape[0]
    gemm = _GEMM.get(w.dtype.char)
    if np.ndim(decay_coef) or gemm is None or not w.flags.c_contiguous or post.dtype != w.dtype or pre.dtype != w.dtype:
        w += rule_update(post, pre, w, eta, decay_coef)
        return
    # w^T (d_pre x d_post, F-ordered) = alpha pre^T post + beta w^T; pre.T and post.T are F-ordered
    wt = w.T
    out = gemm(eta / n, np.asfortranarray(pre.T), np.asfortranarray(post.T), beta=1.0 - decay_coef, c=wt,
               trans_b=1, overwrite_c=1)
    if out is not wt and not np.shares_memory(out, wt):  # pragma: no cover - defensive
        w[...] = out.T


def _gemm_table():
    try:
        from scipy.linalg import blas
    except ImportError:  # pragma: no cover
        return {}
    return {"f": blas.sgemm, "d": blas.dgemm}


_GEMM = _gemm_table()
