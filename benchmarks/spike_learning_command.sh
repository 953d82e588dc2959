#!/bin/bash
# The issue-9 command at the validated learning rate with a 1 s window, seeds 0-4, spike and rate level.
# Usage: bash benchmarks/spike_learning_command.sh   (runs in ./runs/spike_learning_command)
E="--set eta.W=0.1 --set eta.Wbar=0.01 --set eta.V=0.01 --set eta.Vbar=0.01"
mkdir -p runs/spike_learning_command
for s in 0 1 2 3 4; do
  for lvl in spike rate; do
    acc=$(nice -n 10 salspike train --level $lvl --device cpp_standalone --set 'hidden=[30]' $E --set spike.t_window=1000 --set seed=$s --epochs 1 --n-train 300 --out runs/spike_learning_command/${lvl}_$s --quiet 2>&1 | tail -1)
    echo "seed $s $lvl: $acc"
  done
done
