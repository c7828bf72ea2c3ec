#!/usr/bin/env bash
# The sample pipeline's web stages (`webfaq2.yaml --until unique`: warc,
# extract, clean, langid, dedup), cold, four ways: local disk; sources in a
# local S3 server (`--source-root`); sources and the cache's shared tier
# there (`--cache-dir s3://...`, publishing every entry); and a second
# machine (an empty `.dflow/`) on that shared cache, which pulls instead of
# computing. The server is s3s-fs (benches/s3_server.rs) on this machine.
#   benches/sample_s3.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --workspace --all-targets
WORK=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/s3/bench/pipelines"
cp -r pipelines/sample "$WORK/s3/bench/pipelines/sample"
PORT=18015
target/debug/examples/s3_server "$WORK/s3" $PORT > "$WORK/server.log" 2>&1 &
SERVER=$!
until grep -q serving "$WORK/server.log"; do sleep 0.2; done
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=dflow \
  AWS_SECRET_ACCESS_KEY=dflow-secret AWS_REGION=us-east-1
DFLOW=$PWD/target/debug/dflow
source benches/sample_runs.sh
project local; timed "warm-up (fetches lid.176 once)"
for r in $(seq "${1:-3}"); do
  echo "round $r"
  project local; timed "local disk"
  project; timed "sources in S3" --source-root s3://bench/pipelines
  project; timed "sources + shared cache in S3" --source-root s3://bench/pipelines --cache-dir "s3://bench/cache-$r"
  project; timed "second machine, shared cache" --source-root s3://bench/pipelines --cache-dir "s3://bench/cache-$r"
done
