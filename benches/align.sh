#!/bin/sh
# Alignment: pairs compared per second per core for one origin with 10,000
# QAs in each of two languages, dflow vs NumPy. Needs `cargo build
# --workspace --all-targets` and numpy.
set -e
cd "$(dirname "$0")/.."
N=${1:-10000}
target/debug/examples/align_bench "$N"
python3 benches/align_python.py "$N"
