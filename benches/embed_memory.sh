#!/bin/sh
# Peak RSS of `dflow run` embedding N rows (one partition) with the tiny
# BERT of operators/neural/tests/fixtures: memory must not grow with N,
# because `embed` reads and embeds 1,024 rows at a time.
#   benches/embed_memory.sh 20000 200000
set -e
cd "$(dirname "$0")/.."
ROOT=$(pwd)
for N in "${@:-20000 200000}"; do
  DIR=$(mktemp -d)
  mkdir -p "$DIR/data"
  python3 - "$DIR/data/rows.csv" "$N" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
words = "delivery payment shop return order account password warranty size colour price stock".split()
with open(path, "w") as f:
    f.write("id,text\n")
    for i in range(n):
        f.write(f"{i},How does {words[i % len(words)]} {words[(i * 7) % len(words)]} work for order {i}?\n")
PY
  cat > "$DIR/pipeline.yaml" <<YAML
version: 1
name: memory
nodes:
  rows:    { op: csv, params: { paths: ["data/rows.csv"] } }
  tiny:    { op: model, params: { source: "path:$ROOT/operators/neural/tests/fixtures/tiny-bert" } }
  vectors: { op: embed, inputs: { rows: rows, model: tiny }, params: { column: text, dimensions: 32 } }
YAML
  /usr/bin/time -f "N=$N rows: %e s, peak RSS %M KB" "$ROOT/target/debug/dflow" run "$DIR/pipeline.yaml" --quiet
  rm -rf "$DIR"
done
