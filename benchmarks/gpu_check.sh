#!/usr/bin/env bash
# Device check for a lent GPU machine (Python 3.12, no registry access).
# Before: on a machine with PyPI, `bash benchmarks/make_wheelhouse.sh` fills wheelhouse/ (carried).
# Then on the GPU machine, from the repo root:  bash benchmarks/gpu_check.sh
# It installs salspike and its pinned dependencies from wheelhouse/ into a fresh venv, runs
# benchmarks/gpu_check.py (cuda_standalone vs cpp_standalone, float64 then float32) and writes
# the table to $OUT (or benchmarks/recorded/) with the GPU's name.  Budget: under 8 minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=${OUT:-benchmarks/recorded}
mkdir -p "$out"
python3 -m venv /tmp/salspike-venv
. /tmp/salspike-venv/bin/activate
pip install -q --no-index --find-links wheelhouse "numpy<2.3" "brian2==2.8.0" "brian2cuda==1.0a7" nvidia-curand \
    scipy scikit-learn matplotlib tqdm
pip install -q --no-index --no-deps --no-build-isolation -e . || pip install -q --no-index --find-links wheelhouse --no-deps .
name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '_')
stamp=$(date -u +%Y%m%dT%H%M%SZ)
timeout 460 python benchmarks/gpu_check.py --json "$out/gpu_check_${name}_${stamp}.json" \
    | tee "$out/gpu_check_${name}_${stamp}.txt"
