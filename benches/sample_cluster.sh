#!/usr/bin/env bash
# The cost of the cluster path on the sample pipeline's web stages
# (`webfaq2.yaml --until unique`: warc, extract, clean, langid, dedup), cold,
# side by side on this machine: local disk; sources and the shared cache in
# a local S3 server with no cluster; and the same on a Ballista cluster of
# one executor (2 slots) and of two (1 slot each, the same 2 cores). The S3
# server is s3s-fs (benches/s3_server.rs); scheduler and executors are
# `dflow cluster` processes on localhost.
#   benches/sample_cluster.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --workspace --all-targets --features dflow/cluster
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/s3/bench/pipelines"
cp -r pipelines/sample "$WORK/s3/bench/pipelines/sample"
S3=18016; SCHED=18100
target/debug/examples/s3_server "$WORK/s3" $S3 > "$WORK/server.log" 2>&1 &
PIDS+=($!)
until grep -q serving "$WORK/server.log"; do sleep 0.2; done
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3 AWS_ACCESS_KEY_ID=dflow \
  AWS_SECRET_ACCESS_KEY=dflow-secret AWS_REGION=us-east-1
DFLOW=$PWD/target/debug/dflow
wait_port() { until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do sleep 0.1; done; }
"$DFLOW" cluster scheduler --bind 127.0.0.1:$SCHED > "$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
wait_port $SCHED
EXECS=()
executors() { # N slots-each: (re)start N executors
  for p in "${EXECS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  EXECS=()
  sleep 1
  for i in $(seq "$1"); do
    local port=$((SCHED + 10 * i))
    "$DFLOW" cluster executor --scheduler 127.0.0.1:$SCHED --bind 127.0.0.1:$port \
      --slots "$2" --name "e$i" --work-dir "$WORK/exec-$i" --heartbeat-secs 2 > "$WORK/exec-$i.log" 2>&1 &
    EXECS+=($!); PIDS+=($!)
    wait_port $port
  done
}
source benches/sample_runs.sh
ROOT=(--source-root s3://bench/pipelines)
project local; timed "warm-up (fetches lid.176 once)"
for r in $(seq "${1:-3}"); do
  echo "round $r"
  project local; timed "local disk"
  project; timed "S3 sources + shared cache" "${ROOT[@]}" --cache-dir "s3://bench/plain-$r"
  executors 1 2
  project; timed "cluster, 1 executor x 2 slots" "${ROOT[@]}" --cache-dir "s3://bench/one-$r" --cluster 127.0.0.1:$SCHED
  executors 2 1
  project; timed "cluster, 2 executors x 1 slot" "${ROOT[@]}" --cache-dir "s3://bench/two-$r" --cluster 127.0.0.1:$SCHED
done
