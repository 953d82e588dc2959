"""Metrics of the paper and of the weight-transport literature (Akrout et al. 2019).

Every metric takes plain arrays: a weights dict in the cross-level layout (``W{k}``, ``Wbar{k}``,
``V{k}``, ``Vbar{k}``) and activities (``h0..hK``, ``hbar1..hbarK``, one row per trial), so
every level reports the same metrics from what it computed.  All angles are in degrees between
flattened arrays; 0 means parallel, 90 orthogonal.
"""

from __future__ import annotations

import numpy as np

from .circuit.functions import loss_value, outer_mean


def angle(a: np.ndarray, b: np.ndarray) -> float:
    """arccos(<a, b> / (|a| |b|)) in degrees (nan if either is zero)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(a @ b / (na * nb), -1.0, 1.0))))


def effective_rank(m: np.ndarray) -> float:
    """Roy & Vetterli (2007): exp(H(p)), p_i = s_i / sum(s), s the singular values of m."""
    s = np.linalg.svd(np.asarray(m, dtype=np.float64), compute_uv=False)
    if s.sum() == 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def accuracy(y_hat: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(y_hat, axis=1) == labels))


def bp_deltas(weights: dict, activities: dict, upstream: str = "relu") -> list:
    """True backprop errors delta^k = -dF/da^k from the activities: delta^K = hbar^K,
    delta^k = relu'(a^k) * (W^k)^T delta^{k+1}, with relu'(a^k) = 1[h^k > 0].
    Returns delta[1..K] (delta[0] = None)."""
    K = _n_layers(weights)
    delta = [None] * (K + 1)
    delta[K] = np.asarray(activities[f"hbar{K}"], dtype=np.float64)
    for k in range(K - 1, 0, -1):
        back = delta[k + 1] @ np.asarray(weights[f"W{k}"], dtype=np.float64)
        delta[k] = back * (np.asarray(activities[f"h{k}"]) > 0) if upstream == "relu" else back
    return delta


def _n_layers(weights: dict) -> int:
    K = 0
    while f"W{K}" in weights:
        K += 1
    if K == 0:
        raise KeyError("weights have no 'W0'")
    return K


def layer_metrics(weights: dict, activities: dict, upstream: str = "relu", initial: dict | None = None) -> list[dict]:
    """Per weight layer k = 0..K-1 from weights and the activities of a probe batch:
    - delta_angle: angle(Vbar^k hbar^{k+1}, BP delta^{k+1}) (the W-update signal vs backprop),
    - delta_H_angle: angle(Vbar^k hbar^{k+1}, H^k delta^{k+1}), H^k = Vbar^k (Vbar^k)^T: Theorem 1
      (Eq. 9) says SAL's W update is H times SGD's, so this, not delta_angle, goes to 0 when the
      circuit has self-assembled with H far from the identity (equal to delta_angle at the output),
    - dW_angle: angle(dW_SAL, dW_SGD) of the signal parts (no decay),
    - H_min_eig, H_cond: smallest eigenvalue and condition number (largest / smallest eigenvalue)
      of H = Vbar^k (Vbar^k)^T (Theorem 1 needs H positive definite; both 1 at the output),
    - lemma1_distance: |Vbar^{k-1} - (V^k)^T|_F / |V^k|_F (Lemma 1, k >= 1), and
      lemma1_normalised: the same divided by its value for independent random V, Vbar of the
      default init, sqrt(1 + d_k / dbar_k) (|Vbar^{k-1}|_F^2 ~ d_k, |V^k|_F^2 ~ dbar_k), so 1 means
      "no more aligned than at random initialisation" and 0 means Lemma 1 holds exactly,
    - Wbar_WT_angle: angle(Wbar^k, (W^k)^T) where shapes match; weight transport as the baselines
      (V = Vbar = I) define it, meaningless for SAL with random V and Vbar,
    - Wbar_transport_angle: angle(Wbar^k (Vbar^k)^T, V^k (W^k)^T) (k >= 1), the alignment that
      stationary V and Vbar imply (Eq. 27 of the proof of Theorem 1, V W^T D_u = D_d Wbar Vbar^T,
      with D_u = D_d = I); the downstream pathway carries W^T seen through the interstream maps.
      Vbar^{K-1} = I at the output; with V = Vbar = I it equals Wbar_WT_angle,
    - erank_WWT, erank_H: effective ranks of W^k W^k^T and H,
    - with ``initial`` weights: rel_change_<group>: |w - w_initial|_F / |w_initial|_F of the
      group's weight of this layer (how far each group moved from its start)."""
    K = _n_layers(weights)
    f64 = lambda a: np.asarray(a, dtype=np.float64)
    h = [f64(activities[f"h{k}"]) for k in range(K + 1)]
    hbar = [None] + [f64(activities[f"hbar{k}"]) for k in range(1, K + 1)]
    delta = bp_deltas(weights, activities, upstream)
    out = []
    for k in range(K):
        Vb = weights.get(f"Vbar{k}") if k < K - 1 else None
        Vb = None if Vb is None else f64(Vb)
        signal = hbar[k + 1] if Vb is None else hbar[k + 1] @ Vb.T
        H = np.eye(signal.shape[1]) if Vb is None else Vb @ Vb.T
        W = f64(weights[f"W{k}"])
        eig = np.linalg.eigvalsh(H)
        rec = {
            "layer": k,
            "delta_angle": angle(signal, delta[k + 1]),
            "delta_H_angle": angle(signal, delta[k + 1] @ H.T),
            "dW_angle": angle(outer_mean(signal, h[k]), outer_mean(delta[k + 1], h[k])),
            "H_min_eig": float(eig[0]),
            "H_cond": float(eig[-1] / eig[0]) if eig[0] > 0 else float("inf"),
            "erank_WWT": effective_rank(W @ W.T),
            "erank_H": effective_rank(H),
        }
        if k >= 1 and f"V{k}" in weights:
            V = f64(weights[f"V{k}"])
            rec["lemma1_distance"] = float(np.linalg.norm(f64(weights[f"Vbar{k - 1}"]) - V.T)
                                           / max(np.linalg.norm(V), 1e-300))
            d_k, dbar_k = V.shape[1], V.shape[0]
            rec["lemma1_normalised"] = rec["lemma1_distance"] / float(np.sqrt(1.0 + d_k / dbar_k))
            Wbar = weights.get(f"Wbar{k}")
            if Wbar is not None and Wbar.shape == W.T.shape:
                rec["Wbar_WT_angle"] = angle(Wbar, W.T)
            if Wbar is not None:
                Wbar = f64(Wbar)
                rec["Wbar_transport_angle"] = angle(Wbar if Vb is None else Wbar @ Vb.T, V @ W.T)
        if initial is not None:
            for group in ("W", "Wbar", "V", "Vbar"):
                name = f"{group}{k}"
                if name in weights and name in initial:
                    w0 = f64(initial[name])
                    rec[f"rel_change_{group}"] = float(np.linalg.norm(f64(weights[name]) - w0)
                                                       / max(np.linalg.norm(w0), 1e-300))
        out.append(rec)
    return out


def evaluate(y_hat: np.ndarray, y: np.ndarray, labels: np.ndarray, loss: str) -> dict:
    """Mean loss F and classification accuracy of outputs ``y_hat`` against targets ``y``
    (one-hot or regression targets) and integer ``labels``."""
    y_hat = np.asarray(y_hat)
    return {"loss": loss_value(y_hat, np.asarray(y, dtype=y_hat.dtype), loss),
            "accuracy": accuracy(y_hat, labels)}
