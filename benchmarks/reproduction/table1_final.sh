#!/bin/sh
# Table 1 analogue, final runs: each algorithm at the eta_scale chosen on validation accuracy by
# table1_sal.toml / table1_baselines.toml (benchmarks/reproduction/report.py), seeds 0-4.
# Run from the repository root; results in runs/reproduction/table1_final/<algorithm>/sweep.json.
set -e
R=benchmarks/reproduction
salspike sweep $R/table1_sal.toml --grid eta_scale=2 --seeds 0-4 --workers 0 --quiet --out runs/reproduction/table1_final/sal
for pair in bp:8 fa:2 kp:4 wm:4; do
  salspike sweep $R/table1_baselines.toml --grid algorithm=${pair%%:*} --grid eta_scale=${pair##*:} --seeds 0-4 \
    --workers 0 --quiet --out runs/reproduction/table1_final/${pair%%:*}
done
