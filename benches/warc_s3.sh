#!/usr/bin/env bash
# WARC read throughput from a local S3 server against local disk: the same
# reader (`op: warc`'s, with charset decoding) on the same file, the reader
# on core 0, the server (s3s-fs, benches/s3_server.rs) on core 1.
#   benches/warc_s3.sh [SIZE_MB] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/s3/bench"
python3 benches/warc_prepare.py "$WORK/bench.warc.gz" "${1:-200}"
cargo build --quiet --workspace --all-targets
PORT=18014
taskset -c 1 target/debug/examples/s3_server "$WORK/s3" $PORT "$WORK/bench.warc.gz" \
  bench/bench.warc.gz > "$WORK/server.log" 2>&1 &
SERVER=$!
until grep -q uploaded "$WORK/server.log"; do sleep 0.5; done
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=dflow \
  AWS_SECRET_ACCESS_KEY=dflow-secret AWS_REGION=us-east-1
# The allocator settings the dflow binary runs with (src/main.rs): freed
# blocks are reused without the kernel zeroing fresh pages for each one.
export MIMALLOC_PURGE_DECOMMITS=0 MIMALLOC_ALLOW_THP=0
for _ in $(seq "${2:-3}"); do
  echo -n "local disk: "; taskset -c 0 target/debug/examples/warc_read "$WORK/bench.warc.gz"
  echo -n "local S3:   "; taskset -c 0 target/debug/examples/warc_read s3://bench/bench.warc.gz
done
