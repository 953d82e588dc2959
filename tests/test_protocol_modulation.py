"""The short-term modulation protocol (``protocols/short_term_modulation.toml``, paper Sec. 2.3):
matrix level only, short versions of the bundled file (a few seconds).

What the equations fix, independently of the engine's `modulated_activities` (see
`salspike.protocols.modulation`): with m_k = Vbar^{k-1} hbar^k, the modulated activities are
h^k + alpha u_k (u_k = J_k u_{k-1} + m_k) while no ReLU switches, so the probe loss falls at first
order by alpha <e . u_K> = alpha <sum_k delta_k . m_k>; the output's own term is |e|^2 > 0, and
with weight transport (bp) every hidden term is |D_k delta_k|^2 >= 0.  Each test names the
mistakes it catches; each was checked by making that mistake (docs/mutation_testing.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from salspike.cli import main
from salspike.protocols import run_protocol

SHORT = {"seeds": "[0, 1]", "alphas": "[0.0, 0.0001, 0.01, 1.0]", "after_trials": "[0, 300]", "probe_trials": "20"}


def short_file(repo_root, tmp_path, extra_set: str = "", **keys) -> str:
    text = (repo_root / "protocols" / "short_term_modulation.toml").read_text()
    for key, value in {**SHORT, **keys}.items():
        lines = [f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in text.splitlines()]
        assert lines != text.splitlines(), key
        text = "\n".join(lines) + "\n"
    path = tmp_path / "stm.toml"
    path.write_text(text + extra_set)
    return str(path)


def loss_rows(rows, alpha):
    return [r for r in rows if r["measure"] == "loss" and r["alpha"] == alpha]


def test_modulation_lowers_the_loss_as_the_first_order_predicts(repo_root, tmp_path):
    """At a small alpha the probe loss falls by alpha <e . u_K> / F (first order, from the weights
    and the unmodulated activities), the loss at the linearised output equals the measured one
    (no ReLU switches), each layer's change along its error direction matches alpha <u_k . delta_k
    / |delta_k|>, and alpha = 0 changes nothing; `salspike figures` redraws the figure.

    Catches: the modulation's sign flipped (h - alpha Vbar hbar: the loss rises), the output's own
    term dropped (Vbar^{K-1} hbar^K not added), the modulation not propagated upwards (each layer
    modulated from the unmodulated layer below), and alpha not reaching the engine."""
    out = tmp_path / "run"
    res = run_protocol(short_file(repo_root, tmp_path), "matrix", out)
    rows = res["rows"]
    for r in loss_rows(rows, 0.0):
        assert r["measured"] == 1.0
    small = loss_rows(rows, 0.0001)
    assert len(small) == 4  # 2 seeds x 2 snapshots
    for r in small:
        drop, predicted = 1 - r["measured"], 1 - r["first_order"]
        assert predicted > 0  # the output's own term |e|^2 > 0 dominates at this alpha in every snapshot
        assert drop == pytest.approx(predicted, rel=0.01), r
        assert r["measured"] == pytest.approx(r["linearised"], rel=1e-12, abs=0)
    for r in (r for r in rows if r["measure"] == "activity" and r["alpha"] == 0.0001):
        assert r["measured"] == pytest.approx(r["first_order"], rel=1e-6, abs=1e-15), r
    data = json.loads((out / "stm.json").read_text())
    assert data["columns"]["trials"] == "trials" and set(data["meta"]["snapshots"]) == {"0", "300"}
    for snap in data["meta"]["snapshots"].values():
        for s in snap:  # <e . u_K> = sum_k <delta_k . m_k> (two routes through the same equations)
            assert s["slope"] == pytest.approx(sum(s["terms"]), rel=1e-9)
    (out / "stm.png").unlink()
    assert main(["figures", str(out)]) == 0 and (out / "stm.png").is_file()


def test_with_weight_transport_every_layer_helps(repo_root, tmp_path):
    """bp (Vbar = I, Wbar = W^T, D_d the ReLU Jacobian): hbar^k = D_k delta_k, so every layer's term
    delta_k . m_k = |D_k delta_k|^2 >= 0, the output's alignment is 1 and the hidden layers' is
    positive; the loss falls at small alpha.

    Catches: the modulation's sign flipped; alpha not reaching the engine."""
    path = short_file(repo_root, tmp_path, extra_set='algorithm = "bp"\ndownstream_ratio = 1.0\n',
                      seeds="[0]")
    res = run_protocol(path, "matrix", tmp_path / "bp")
    for snap in res["meta"]["snapshots"].values():
        for s in snap:
            assert all(t > 0 for t in s["terms"]) and s["reducing_fraction"] == 1.0
    act = [r for r in res["rows"] if r["measure"] == "activity" and r["alpha"] == 0.0001]
    assert all(r["alignment"] > 0.3 for r in act)
    assert all(r["alignment"] == pytest.approx(1.0, abs=1e-12) for r in act if r["target"] == "h3")
    assert all(r["measured"] < 1 for r in loss_rows(res["rows"], 0.0001) + loss_rows(res["rows"], 0.01))


@pytest.mark.parametrize("level", ["rate", "spike"])
def test_modulation_is_refused_at_the_brian_levels(capsys, tmp_path, level):
    """At the rate and spike levels the protocol refuses in one line saying why (the apical input
    would drive the soma: a loop those levels do not run), writing nothing; listed at the matrix
    level only."""
    from salspike.protocols import list_protocols

    assert {name: levels for name, _, levels, _ in list_protocols()}["short_term_modulation"] == ["matrix"]
    assert main(["protocol", "run", "short_term_modulation", "--level", level, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "closes a loop" in err[0] and "--level matrix" in err[0]
    assert not (tmp_path / "x").exists()
