#!/bin/sh
# Exact dense retrieval (evaluate's dense path): top 100 by cosine for Q
# queries over N stored vectors of 384 dimensions, 2 threads: dflow vs
# NumPy vs FAISS IndexFlatIP. Needs `cargo build --workspace
# --all-targets`, `pip install numpy faiss-cpu`.
set -e
cd "$(dirname "$0")/.."
N=${1:-1000000}
Q=${2:-1000}
target/debug/examples/dense_bench "$N" "$Q"
OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 python3 benches/dense_python.py "$N" "$Q"
