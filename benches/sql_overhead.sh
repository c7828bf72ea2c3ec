#!/usr/bin/env bash
# Cache overhead of a per-partition `op: sql` node (Parquet in, Parquet out)
# against the same query run directly with DataFusion on the same files.
#   benches/sql_overhead.sh [FILES] [ROWS_PER_FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${1:-8}
ROWS=${2:-500000}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
QUERY="SELECT id, language, upper(question) AS q, score * 2 AS s FROM t WHERE score > 0.25"
# Same feature set as the tests, so nothing is built twice.
cargo build --quiet --workspace --all-targets
BIN=target/debug
$BIN/examples/sql_direct gen "$WORK/in" "$FILES" "$ROWS"
cat > "$WORK/p.yaml" <<YAML
version: 1
name: overhead
nodes:
  src: { op: parquet, params: { paths: ["in/*.parquet"] } }
  q:
    op: sql
    inputs: { t: src }
    params: { partition_by: t, query: "$QUERY" }
YAML
for i in 1 2 3; do
  rm -rf "$WORK/direct"
  $BIN/examples/sql_direct direct "$WORK/in" "$WORK/direct" "$QUERY"
done
for i in 1 2 3; do
  $BIN/dflow run "$WORK/p.yaml" --jobs 1 --log-format json --force q \
    | grep '"node_finished"' | grep '"q"' \
    | sed -E 's/.*"seconds":([0-9.]+).*/dflow q node: \1 s/'
done
