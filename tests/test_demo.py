"""`salspike demo`: the README's first run, here with a reduced size (1 epoch on 100 digits, one
silenced area, 2 trials): every file it points the user to exists, the NWB file opens with
pynwb and holds the spikes of every population, and the spike-level result is the prediction
(the area below a silenced one fires exactly the control's spikes)."""

from __future__ import annotations

import pytest

from salspike.demo import run_demo
from salspike.errors import ConfigError


def test_demo_runs_end_to_end(tmp_path):
    pynwb = pytest.importorskip("pynwb")
    lines = []
    res = run_demo(tmp_path / "demo", epochs=1, n_train=100, trials=2, areas=[2], log=lines.append)
    look = res["look"]
    assert all(path is not None and path.is_file() for path in look.values()), look
    assert "where to look" in "\n".join(lines) and str(look["spike trains (NWB)"]) in "\n".join(lines)
    assert res["train"]["level"] == "matrix" and 0 <= res["train"]["final_test_accuracy"] <= 1
    below = [r for r in res["protocol"]["rows"] if r["area"] == 1][0]
    assert below["activity_up"] == 1.0 and below["plasticity_W"] == 0.0
    with pynwb.NWBHDF5IO(str(look["spike trains (NWB)"]), "r") as io:
        nwb = io.read()
        assert set(nwb.units["population"][:]) == {"h0", "h1", "h2", "h3", "hbar1", "hbar2", "hbar3"}
        assert sum(len(nwb.units["spike_times"][i]) for i in range(len(nwb.units))) > 0
    with pytest.raises(ConfigError, match="not empty"):
        run_demo(tmp_path / "demo", log=lines.append)
