"""Metrics of the paper and of the weight-transport literature (Akrout et al. 2019).

All angles are in degrees between flattened arrays; 0 means parallel, 90 orthogonal.
"""

from __future__ import annotations

import numpy as np

from .matrix import rules


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


def layer_metrics(net, x: np.ndarray, y: np.ndarray) -> list[dict]:
    """Per weight layer k = 0..K-1 on a probe batch:
    - delta_angle: angle(Vbar^k hbar^{k+1}, BP delta^{k+1}) (the W-update signal vs backprop),
    - dW_angle: angle(dW_SAL, dW_SGD) of the signal parts (no decay),
    - H_min_eig: smallest eigenvalue of H = Vbar^k (Vbar^k)^T (Theorem 1; 1 at the output),
    - lemma1_distance: |Vbar^{k-1} - (V^k)^T|_F / |V^k|_F (Lemma 1, k >= 1),
    - Wbar_WT_angle: angle(Wbar^k, (W^k)^T) where shapes match,
    - erank_WWT, erank_H: effective ranks of W^k W^k^T and H."""
    act = net.activities(x, y)
    delta = rules.bp_deltas(net.W, act.h, act.a, act.hbar[-1], net.circuit["upstream_nonlinearity"])
    out = []
    for k in range(net.K):
        Vb = net.Vbar[k]
        signal = act.hbar[k + 1] if Vb is None else act.hbar[k + 1] @ Vb.T
        H = np.eye(signal.shape[1]) if Vb is None else Vb.astype(np.float64) @ Vb.T.astype(np.float64)
        W = net.W[k].astype(np.float64)
        rec = {
            "layer": k,
            "delta_angle": angle(signal, delta[k + 1]),
            "dW_angle": angle(rules.outer_mean(signal, act.h[k]), rules.outer_mean(delta[k + 1], act.h[k])),
            "H_min_eig": float(np.linalg.eigvalsh(H)[0]),
            "erank_WWT": effective_rank(W @ W.T),
            "erank_H": effective_rank(H),
        }
        if k >= 1:
            V = net.V[k]
            rec["lemma1_distance"] = float(np.linalg.norm(net.Vbar[k - 1] - V.T) / max(np.linalg.norm(V), 1e-300))
            if net.Wbar[k].shape == net.W[k].T.shape:
                rec["Wbar_WT_angle"] = angle(net.Wbar[k], net.W[k].T)
        out.append(rec)
    return out


def evaluate(net, x: np.ndarray, y: np.ndarray, labels: np.ndarray, batch: int = 2048) -> dict:
    """Mean loss and accuracy of the upstream network on a dataset split."""
    losses, correct = [], 0
    for i in range(0, x.shape[0], batch):
        y_hat = net.predict(x[i:i + batch])
        losses.append(rules.loss_value(y_hat, net._cast(y[i:i + batch]), net.circuit["loss"]) * len(y_hat))
        correct += int(np.sum(np.argmax(y_hat, axis=1) == labels[i:i + batch]))
    n = x.shape[0]
    return {"loss": float(np.sum(losses) / n), "accuracy": correct / n}
