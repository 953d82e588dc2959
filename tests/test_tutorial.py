"""docs/tutorial.md runs as written: every ```python block, in order, in one namespace, in a new
working folder (so the tutorial cannot rot), and what its prose claims holds.

Claims checked on the namespace the blocks leave (independent of what the blocks print):
the top downstream activity is y - softmax(y_hat); every W update of a matrix step equals Eq. 5
recomputed from the returned activities; training improves on chance; the rate level's updates
equal the matrix level's (cosine 1, norm ratio 1 per group); area_silencing gives the same exact
pattern at the matrix and spike levels (above a silenced area no upstream activity and no W
change, below it unchanged activity and no W change); the spike trains recounted from the NWB
file equal the run's window counts, and for the signed output pair ON - OFF counts / (s T) equal
the activities the spike level returned; the NWB file written with `write_nwb` holds every
recorded spike.
Catches: a renamed or removed public name the tutorial uses (ImportError/AttributeError in a
block); a block that raises; a wrong sign or missing term in W's update or the top error; the
overrides of `run_protocol` ignored; spikes lost or their ON/OFF sign dropped in the NWB export
(docs/mutation_testing.md, "Tutorial")."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, source) of every ```python block of a markdown text, in order."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in BLOCK.finditer(text)]


def test_tutorial_blocks_are_found():
    blocks = python_blocks(TUTORIAL.read_text())
    assert len(blocks) >= 10
    assert all("skip" not in src.splitlines()[0].lower() for _, src in blocks if src.strip())


def test_tutorial_runs_and_its_claims_hold(tmp_path, monkeypatch):
    pytest.importorskip("pynwb")
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "tutorial"}
    for line, src in python_blocks(TUTORIAL.read_text()):
        exec(compile(src, f"{TUTORIAL}:{line}", "exec"), ns)  # a failing block fails the test at its line

    # 2. one matrix step: the top error and Eq. 5
    K, act, y = ns["K"], ns["act"], ns["y"]
    assert ns["dW_max_error"] < 1e-12
    assert np.abs(ns["act"][f"hbar{K}"] - (y - ns["p"])).max() < 1e-12
    assert np.abs(ns["net"].weights["W0"] - ns["before"]["W0"]).max() > 1e-4  # the step did learn
    # 3. training: better than chance (10 classes), metrics of every layer
    assert ns["summary"]["final_test_accuracy"] > 0.5 and len(ns["history"]) == 3
    assert all(p.is_file() for p in ns["curves"] + ns["fig3"])
    # 4. rate level = matrix level
    for row in ns["rate_vs_matrix"]["rows"]:
        assert row["update_cosine_min"] > 0.9999 and abs(row["cumulative_relative_norm"] - 1) < 1e-3, row
    # 5. the same exact pattern at both levels; the overrides were applied
    both = ns["both"]
    assert len(both) == 4 and set(both.position) == {"above", "below"}
    for lv in ("matrix", "spike"):
        above, below = both[both.position == "above"], both[both.position == "below"]
        assert (above[f"activity_up_{lv}"] == 0).all() and (above[f"plasticity_W_{lv}"] == 0).all()
        assert (below[f"activity_up_{lv}"] == 1).all() and (below[f"plasticity_W_{lv}"] == 0).all()
        assert (above[f"activity_down_{lv}"] > 0).all()
    assert {r["seed"] for r in ns["spike_run"]["rows"]} == {0}
    assert all(Path(p).is_file() for p in ns["figure"])
    # 6. the NWB files
    trials, recount = ns["trials"], ns["recount"]
    assert len(trials) == 3 * 2 * 3  # (control, area 1 silenced, area 2 silenced) x (probe, learning) x 3 trials
    np.testing.assert_array_equal(recount, ns["run_counts"])
    assert recount.sum() > 10  # not vacuous
    signed, s, window_ms = ns["signed"], ns["s"], ns["window_ms"]
    np.testing.assert_allclose(ns["act3"]["h3"], signed / (s * window_ms * 1e-3), atol=1e-12)
    assert (signed > 0).any() and (signed < 0).any()  # both polarities of the pair carry spikes
    back, spikes = ns["back"], ns["spikes"]
    assert ns["n_units"] == 6
    for pol, sgn in (("on", 1), ("off", -1)):
        assert [len(t) for t in back["spikes"]["h3"][pol]] == \
            [int(np.sum((spikes["i"] == n) & (spikes["sign"] == sgn))) for n in range(3)]
