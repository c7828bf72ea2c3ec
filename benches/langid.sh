#!/bin/sh
# Language id predictions/s: dflow vs Python fastText, same model and texts,
# one core each. Needs `cargo build --workspace --all-targets` and
# `pip install fasttext-predict==0.9.2.4`.
set -e
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/eval/tatoeba-laser}
taskset -c 0 target/debug/examples/langid_bench "$DATA" 3
taskset -c 0 python3 benches/langid_python.py "$DATA" operators/web/models/lid.176.ftz 3
