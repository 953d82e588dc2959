"""`salspike demo`: the README's first run, here with a reduced size (1 epoch on 100 digits,
area 2 silenced, 3 trials), which is also the test of area_silencing at the spike level and of
the NWB file a spike-level protocol run writes.

Independent facts: every file the demo points the user to exists; with area 2 of the 8-6-5-3
circuit silenced (h2 and hbar2 clamped at 0), area 1 below fires exactly the control's spikes
(same spike-train seed; no descending term in the soma: ratio exactly 1), receives no error
spikes and its W does not change; area 3 above fires no upstream spike and its W does not
change.  The NWB file, opened with pynwb and recounted in each trial's window, gives the run's
window counts (ON - OFF for the signed pairs), and the table's activity ratio from the file alone;
the raster figure's PSTH (its table, as drawn) sums per population and polarity to the file's
spikes in the trials shown.
Catches: a clamp of a downstream (hbar) population ignored at the spike level; upstream
activity depending on a higher area; plasticity below a silenced area; spikes lost, moved to
another neuron/population/trial or their ON/OFF sign dropped in the export; spikes dropped or
double-counted in the PSTH, OFF units merged into ON (docs/mutation_testing.md)."""

from __future__ import annotations

import numpy as np
import pytest

from salspike.demo import run_demo
from salspike.errors import ConfigError
from test_protocols_spike import nwb_window_counts


def test_demo_runs_end_to_end_and_its_spike_run_is_one_way(tmp_path):
    pytest.importorskip("pynwb")
    lines = []
    res = run_demo(tmp_path / "demo", epochs=1, n_train=100, trials=3, areas=[2], log=lines.append)
    look = res["look"]
    assert all(path is not None and path.is_file() for path in look.values()), look
    assert "where to look" in "\n".join(lines) and str(look["spike trains (NWB)"]) in "\n".join(lines)
    assert res["train"]["level"] == "matrix" and 0 <= res["train"]["final_test_accuracy"] <= 1
    with pytest.raises(ConfigError, match="not empty"):
        run_demo(tmp_path / "demo", log=lines.append)

    rows = res["protocol"]["rows"]
    below = [r for r in rows if r["area"] == 1][0]
    above = [r for r in rows if r["area"] == 3][0]
    assert below["activity_up"] == 1.0 and below["activity_down"] == 0.0 and below["plasticity_W"] == 0.0
    assert above["activity_up"] == 0.0 and above["plasticity_W"] == 0.0 and above["activity_down"] > 0.1

    recount, series, cond, w0 = nwb_window_counts(look["spike trains (NWB)"])
    assert set(recount) == {"h0", "h1", "h2", "h3", "hbar1", "hbar2", "hbar3"}
    assert len(cond) == 4 * 3  # control and silenced: probe (3 trials) and learning (3 trials) each
    for pop, (t, counts) in series.items():
        rows_of = np.searchsorted(w0, t - 1e-12)
        np.testing.assert_array_equal(recount[pop][rows_of], counts, err_msg=pop)
    assert np.abs(series["h1"][1]).sum() > 10 and np.abs(series["hbar3"][1]).sum() > 10  # not vacuous
    # the table's activity ratio of area 1 from the file alone: probe trials are each level's first run
    probe = {c: [i for i, k in enumerate(cond) if k == f"seed 0, {c} | step"][:3] for c in ("control", "area 2 silenced")}
    h1 = recount["h1"]
    ratio = np.abs(h1[probe["area 2 silenced"]]).mean() / np.abs(h1[probe["control"]]).mean()
    assert ratio == pytest.approx(below["activity_up"], abs=1e-12)
    assert np.all(recount["h2"][probe["area 2 silenced"]] == 0) and np.all(recount["h3"][probe["area 2 silenced"]] == 0)
    # its raster + PSTH figure, written by the run and redrawn by `salspike figures` from the NWB file alone
    from salspike.cli import main

    nwb = look["spike trains (NWB)"]
    raster_counts_agree_with_nwb(nwb)
    for p in nwb.parent.glob("*_raster.*"):
        p.unlink()
    assert main(["figures", str(nwb.parent)]) == 0
    raster_counts_agree_with_nwb(nwb)


def raster_counts_agree_with_nwb(nwb_path, stem=None) -> None:
    """The raster figure's PSTH table (NAME_raster.csv, as drawn) against the NWB file read here with
    pynwb: per population, polarity and trial shown the PSTH's counts sum to the units' spikes in
    that trial, and every condition of the run has a trial shown."""
    import csv

    import pynwb

    from test_figures import fonts_embedded

    stem = nwb_path.with_name(nwb_path.stem + "_raster") if stem is None else stem
    assert all(stem.with_suffix(ext).stat().st_size > 1000 for ext in (".pdf", ".svg", ".png"))
    assert fonts_embedded(stem.with_suffix(".pdf"))
    drawn: dict[tuple[str, int, int], int] = {}
    with open(stem.with_suffix(".csv"), newline="") as f:
        for r in csv.DictReader(f):
            key = (r["population"], int(r["polarity"]), int(r["trial"]))
            drawn[key] = drawn.get(key, 0) + int(r["spikes"])
    shown = sorted({k[2] for k in drawn})
    with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
        nwb = io.read()
        start, stop = np.asarray(nwb.trials["start_time"][:]), np.asarray(nwb.trials["stop_time"][:])
        conditions = [str(c) for c in nwb.trials["condition"][:]]
        units = nwb.units
        counted: dict[tuple[str, int, int], int] = {}
        for u in range(len(units)):
            t = np.asarray(units["spike_times"][u])
            for i in shown:
                key = (str(units["population"][u]), int(units["polarity"][u]), i)
                counted[key] = counted.get(key, 0) + int(np.sum((t >= start[i]) & (t < stop[i])))
    assert {conditions[i] for i in shown} == set(conditions)  # the control and each manipulation
    assert drawn == counted and sum(counted.values()) > 50  # not vacuous
    assert {k[1] for k in counted} == {-1, 0, 1}  # ON and OFF units of the signed pairs, unsigned ones

