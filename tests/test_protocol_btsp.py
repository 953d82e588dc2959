"""The behavioural-timescale protocol (``protocols/btsp_window.toml``): SAL's pairing window over
seconds beside the BTSP kernel; spike level only, a short version (two seeds, six delays up to
1 s, runtime device, a few seconds of simulated time).

Independent facts checked: W's rule reads the apical current at each presynaptic spike and that
current decays with spike.tau_s = 20 ms, so a presynaptic burst that ends before the plateau
begins changes nothing (exactly 0), one 0.5 s or more after the plateau's onset (>= 150 ms after its
end, 300 ms plateau) changes < 1e-3 of the peak (exp(-150 / 20) < 1e-3), and near-zero delays
change W exactly as the closed form of this seed's spike trains says; the BTSP kernel (a
literature description) is far from 0 at |delta_t| = 1 s.  Each test names the mistakes it
catches; each was checked by making that mistake (docs/mutation_testing.md).
"""

from __future__ import annotations

import json

import brian2  # noqa: F401  (a hard dependency: a missing one fails, never skips)
import pytest

from salspike.cli import main
from salspike.protocols import run_protocol

SHORT = {"seeds": "[0, 1]", "delays_s": "[-1.0, -0.5, -0.1, 0.0, 0.5, 1.0]", "plateau_spikes": "20"}


def short_file(repo_root, tmp_path) -> str:
    lines = (repo_root / "protocols" / "btsp_window.toml").read_text().splitlines()
    out, skip = [], False
    for line in lines:
        key = line.split(" = ")[0]
        if skip and line.startswith(" "):
            continue  # the continuation of a replaced multi-line list
        skip = key in SHORT
        out.append(f"{key} = {SHORT[key]}" if skip else line)
    path = tmp_path / "btsp.toml"
    path.write_text("\n".join(out) + "\n")
    return str(path)


def test_btsp_window_sal_is_blind_beyond_its_window(repo_root, tmp_path):
    """`salspike protocol run btsp_window --level spike` (short), then `salspike figures`.

    Catches: an apical current (the eligibility of W's tag) that lasts longer than tau_s (a
    seconds-long, BTSP-like trace: the changes no longer equal the closed form and the -0.5 s
    pairing changes W); the tag's sign flipped (closed form).  Also asserted: presynaptic-first
    pairings change nothing at all, no postsynaptic spike, the BTSP kernel at 1 s."""
    out = tmp_path / "run"
    res = run_protocol(short_file(repo_root, tmp_path), "spike", out, device="runtime")
    rows, meta = res["rows"], res["meta"]
    assert meta["postsynaptic_spikes"] == 0 and meta["hold_soma"] is True
    peak = meta["peak_expected_per_unit_topdown"]
    assert peak > 0
    for r in rows:
        assert r["max_abs_error"] <= 1e-9 * peak, r  # every change is the closed form of its spike trains
        if r["order"] == "presynaptic first":
            assert r["dW_per_unit_topdown"] == 0.0 and r["dW"] == 0.0  # causal read: exactly nothing
        if abs(r["delta_t_s"]) >= 0.5:
            assert abs(r["dW_per_unit_topdown"]) < 1e-3 * peak, r
        if r["delta_t_s"] in (-0.1, 0.0):  # the presynaptic burst inside the plateau: potentiation
            assert r["dW_per_unit_topdown"] > 0.2 * peak
            assert r["dW_per_unit_topdown"] == pytest.approx(r["closed_form_per_unit_topdown"], rel=1e-9)
    # the discriminating pairing: BTSP (literature kernel) potentiates at 1 s, SAL does not
    for label, v in meta["discriminating_pairings"].items():
        assert v["btsp_relative"] > 0.2 and abs(v["sal_relative_mean"]) < 1e-3, label
    lo, hi = meta["sal_window_s"]
    assert -0.5 < lo < hi < 0.1 and meta["btsp_window_width_s"] > 10 * meta["sal_window_width_s"]
    data = json.loads((out / "btsp.json").read_text())
    assert data["columns"]["delta_t_s"] == "s" and "NOT simulated" in data["meta"]["btsp_relative"]
    assert (out / "btsp.nwb").is_file()
    (out / "btsp.png").unlink()
    assert main(["figures", str(out)]) == 0 and (out / "btsp.png").is_file()


def test_btsp_window_is_refused_at_the_rate_level(capsys, tmp_path):
    """A timing protocol: listed at the spike level only; the matrix and rate levels refuse it in
    one line, writing nothing."""
    from salspike.protocols import list_protocols

    assert {name: levels for name, _, levels, _ in list_protocols()}["btsp_window"] == ["spike"]
    assert main(["protocol", "run", "btsp_window", "--level", "rate", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "timing protocol" in err[0] and "--level spike" in err[0]
    assert not (tmp_path / "x").exists()
