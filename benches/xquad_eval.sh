#!/bin/sh
# Zero-shot retrieval on XQuAD-R (11 languages): BM25 and multilingual-e5-small
# through `evaluate` and `report`, the baseline a fine-tuned model is
# compared with; fine-tuned models (NAME=DIR, sentence-transformers
# directories such as pipelines/out/webfaq2/models/*) are evaluated beside
# them. Needs `cargo build --workspace --all-targets` and the models
# (`scripts/fetch_models.sh DIR`).
#   benches/xquad_eval.sh MODELS_DIR [QUERIES_PER_LANGUAGE] [NAME=DIR ...]
#   BASE=0 benches/xquad_eval.sh ...   # only the fine-tuned models
set -e
cd "$(dirname "$0")/.."
MODELS=$(cd "$1" && pwd)
N=${2:-300}
shift; [ $# -gt 0 ] && shift
W=$(mktemp -d)
python3 benches/xquad_tables.py ../shared/data/eval/xquad-r "$W" "$N"
{
  cat <<YAML
version: 1
name: xquad
nodes:
  queries: { op: csv, params: { paths: [queries.csv] } }
  corpus:  { op: csv, params: { paths: [corpus.csv] } }
  qrels:   { op: csv, params: { paths: [qrels.csv] } }
YAML
  systems=""
  if [ "${BASE:-1}" != 0 ]; then
    cat <<YAML
  e5:      { op: model, params: { source: "path:$MODELS/multilingual-e5-small" } }
  qvec:    { op: embed, inputs: { rows: queries, model: e5 }, params: { column: text, prefix: "query: ", dimensions: 384, max_length: 128 } }
  cvec:    { op: embed, inputs: { rows: corpus, model: e5 }, params: { column: text, prefix: "passage: ", dimensions: 384, max_length: 128 } }
  bm25:    { op: evaluate, inputs: { queries: queries, corpus: corpus, qrels: qrels }, params: { name: bm25 } }
  e5_base: { op: evaluate, inputs: { queries: qvec, corpus: cvec, qrels: qrels }, params: { name: e5-small, method: dense } }
YAML
    systems="a: bm25, b: e5_base"
  fi
  i=0
  for spec in "$@"; do
    name=${spec%%=*}; dir=$(cd "${spec#*=}" && pwd); i=$((i + 1))
    cat <<YAML
  m$i:     { op: model, params: { source: "path:$dir" } }
  q$i:     { op: embed, inputs: { rows: queries, model: m$i }, params: { column: text, prefix: "query: ", dimensions: 384, max_length: 128 } }
  c$i:     { op: embed, inputs: { rows: corpus, model: m$i }, params: { column: text, prefix: "passage: ", dimensions: 384, max_length: 128 } }
  e$i:     { op: evaluate, inputs: { queries: q$i, corpus: c$i, qrels: qrels }, params: { name: $name, method: dense } }
YAML
    systems="${systems:+$systems, }m$i: e$i"
  done
  echo "  report:  { op: report, inputs: { $systems }, params: { path: report, title: \"XQuAD-R zero-shot\" } }"
} > "$W/pipeline.yaml"
start=$(date +%s)
target/debug/dflow run "$W/pipeline.yaml" --quiet
echo "run: $(( $(date +%s) - start )) s"
target/debug/dflow sql "$W/pipeline.yaml" "SELECT system, language, queries, round(\"ndcg@10\", 3) AS ndcg10, round(\"mrr@10\", 3) AS mrr10, round(\"recall@100\", 3) AS r100 FROM report ORDER BY language, system"
echo "report: $W/report/report.md"
