#!/bin/sh
# Zero-shot retrieval on XQuAD-R (11 languages): BM25 and multilingual-e5-small
# through `evaluate` and `report`, the baseline a fine-tuned model is
# compared with. Needs `cargo build --workspace --all-targets` and the
# models (`scripts/fetch_models.sh DIR`).
#   benches/xquad_eval.sh MODELS_DIR [QUERIES_PER_LANGUAGE]
set -e
cd "$(dirname "$0")/.."
MODELS=$(cd "$1" && pwd)
N=${2:-300}
W=$(mktemp -d)
python3 benches/xquad_tables.py ../shared/data/eval/xquad-r "$W" "$N"
cat > "$W/pipeline.yaml" <<YAML
version: 1
name: xquad
nodes:
  queries: { op: csv, params: { paths: [queries.csv] } }
  corpus:  { op: csv, params: { paths: [corpus.csv] } }
  qrels:   { op: csv, params: { paths: [qrels.csv] } }
  e5:      { op: model, params: { source: "path:$MODELS/multilingual-e5-small" } }
  qvec:    { op: embed, inputs: { rows: queries, model: e5 }, params: { column: text, prefix: "query: ", dimensions: 384, max_length: 128 } }
  cvec:    { op: embed, inputs: { rows: corpus, model: e5 }, params: { column: text, prefix: "passage: ", dimensions: 384, max_length: 128 } }
  bm25:    { op: evaluate, inputs: { queries: queries, corpus: corpus, qrels: qrels }, params: { name: bm25 } }
  e5_base: { op: evaluate, inputs: { queries: qvec, corpus: cvec, qrels: qrels }, params: { name: e5-small, method: dense } }
  report:  { op: report, inputs: { a: bm25, b: e5_base }, params: { path: report, title: "XQuAD-R zero-shot" } }
YAML
start=$(date +%s)
target/debug/dflow run "$W/pipeline.yaml" --quiet
echo "run: $(( $(date +%s) - start )) s"
target/debug/dflow sql "$W/pipeline.yaml" "SELECT system, language, queries, round(\"ndcg@10\", 3) AS ndcg10, round(\"mrr@10\", 3) AS mrr10, round(\"recall@100\", 3) AS r100 FROM report ORDER BY language, system"
echo "report: $W/report/report.md"
