#!/bin/sh
# extract vs plain HTML tokenisation vs Python extruct on the real FAQ pages,
# one core each. Needs `cargo build --workspace --all-targets` and
# `pip install extruct==0.18.0`.
set -e
cd "$(dirname "$0")/.."
PAGES=${1:-../shared/data/faq-pages}
RAYON_NUM_THREADS=1 taskset -c 0 target/debug/examples/extract_pages "$PAGES" 5
taskset -c 0 python3 benches/extract_python.py "$PAGES" 3
