#!/bin/sh
# BM25 mining: top-200 queries/s over 200k documents, dflow vs bm25s, both on
# the machine's cores (2 here). Needs `cargo build --workspace --all-targets`
# and `pip install bm25s==0.3.16`.
set -e
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/eval/xquad-r}
N=${2:-200000}
Q=${3:-2000}
target/debug/examples/mine_bench "$DATA" "$N" "$Q" 200
python3 benches/mine_python.py "$DATA" "$N" "$Q" 200 "$(nproc)"
