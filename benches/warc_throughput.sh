#!/usr/bin/env bash
# WARC read throughput: dflow's reader vs FastWARC and warcio, and the
# physical limit (gzip -dc) on the same >= 200 MB file.
#   pip install fastwarc warcio; benches/warc_throughput.sh [SIZE_MB]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 benches/warc_prepare.py "$WORK/bench.warc.gz" "${1:-200}"
cargo build --quiet --workspace --all-targets
t0=$(date +%s.%N); gzip -dc "$WORK/bench.warc.gz" > /dev/null; t1=$(date +%s.%N)
echo "gzip -dc: $(echo "$t1 - $t0" | bc) s"
taskset -c 0 target/debug/examples/gunzip "$WORK/bench.warc.gz"
taskset -c 0 target/debug/examples/warc_read "$WORK/bench.warc.gz"
taskset -c 0 target/debug/examples/warc_read "$WORK/bench.warc.gz" --no-charset
taskset -c 0 python3 benches/warc_python.py "$WORK/bench.warc.gz"
