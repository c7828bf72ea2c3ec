#!/usr/bin/env bash
# `dflow status` and a no-op `dflow run` on a pipeline whose source holds
# 10,000 files (stat-based change detection; only changed files re-hashed).
#   benches/status_10k.sh [FILES]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
[ -n "${DFLOW_BIN:-}" ] || cargo build --quiet --workspace --all-targets
BIN=${DFLOW_BIN:-$PWD/target/debug/dflow}
mkdir -p "$WORK/data"
python3 - "$WORK/data" "$N" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(f"{d}/f{i:05}.csv", "w") as f:
        f.write("id,text\n")
        f.write(f"{i},row {i}\n")
PY
cat > "$WORK/p.yaml" <<YAML
version: 1
name: many
nodes:
  src: { op: csv, params: { paths: ["data/*.csv"] } }
  clean:
    op: sql
    inputs: { t: src }
    params: { partition_by: t, query: "SELECT id, upper(text) AS text FROM t" }
  total:
    op: sql
    inputs: { t: clean }
    params: { query: "SELECT count(*) AS n FROM t" }
YAML
t0=$(date +%s.%N); $BIN run "$WORK/p.yaml" --quiet; t1=$(date +%s.%N)
echo "cold run: $(echo "$t1 - $t0" | bc) s"
sleep 2  # let files leave the racy-clean window so their digests are remembered
$BIN status "$WORK/p.yaml" > /dev/null  # first status fills the stat cache
for cmd in "status" "run --quiet"; do
  for i in 1 2 3 4 5; do
    t0=$(date +%s.%N); $BIN $cmd "$WORK/p.yaml" > /dev/null; t1=$(date +%s.%N)
    echo "$cmd: $(echo "$t1 - $t0" | bc) s"
  done
done
