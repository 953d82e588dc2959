#!/usr/bin/env bash
# Download the wheels the GPU check needs for Python 3.12 / x86_64 into wheelhouse/ (git-ignored;
# carry it to the GPU machine).  Needs PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
pip download -q -d wheelhouse --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    "numpy<2.3" "brian2==2.8.0" "brian2cuda==1.0a7" nvidia-curand scipy scikit-learn matplotlib tqdm \
    setuptools wheel cython sympy jinja2 pyparsing
pip wheel -q --no-deps -w wheelhouse .
ls wheelhouse | wc -l
