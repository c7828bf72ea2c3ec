#!/bin/sh
# multilingual-e5-small embedding on the CPU: dflow (Burn) vs
# sentence-transformers (PyTorch) on the same weights and texts, 2 threads.
# Needs scripts/fetch_models.sh MODELS, `cargo build --workspace
# --all-targets` and `pip install torch sentence-transformers`.
set -e
cd "$(dirname "$0")/.."
MODELS=${1:?usage: benches/embed.sh MODELS_DIR [N]}
N=${2:-2000}
DATA=../shared/data/eval/xquad-r
target/debug/examples/embed_bench "$MODELS/multilingual-e5-small" "$DATA" "$N"
python3 benches/embed_python.py "$MODELS" "$DATA" "$N"
