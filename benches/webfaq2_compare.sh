#!/bin/sh
# WebFAQ 2.0's comparison on the bundled sample: base e5-small, MNRL with
# in-batch negatives, MNRL + the teacher's top-4 negatives, MNRL + denoised
# negatives (webfaq2.yaml's `mnrl`), MarginMSE (`margin_mse`), and BM25.
# Runs pipelines/webfaq2.yaml with the extra nodes of
# benches/webfaq2_compare.yaml appended, on the pipeline's own cache, so
# what `dflow run pipelines/webfaq2.yaml` computed is reused (and its lock
# file is left alone). Arguments go to `dflow run` (`--force in_batch`).
set -e
cd "$(dirname "$0")/.."
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
ln -s "$PWD/pipelines/sample" "$W/sample"
ln -s "$PWD/pipelines/out" "$W/out"
mkdir -p pipelines/out
P=$W/webfaq2-compare.yaml
sed 's/^name: webfaq2$/name: webfaq2-compare/' pipelines/webfaq2.yaml > "$P"
cat benches/webfaq2_compare.yaml >> "$P"
start=$(date +%s)
target/debug/dflow run "$P" --cache-dir pipelines/.dflow --quiet "$@"   # e.g. --force NODE
echo "run: $(( $(date +%s) - start )) s"
target/debug/dflow sql "$P" --cache-dir pipelines/.dflow "SELECT system, round(\"ndcg@10\", 3) AS ndcg10, round(\"mrr@10\", 3) AS mrr10, round(\"recall@100\", 3) AS r100 FROM comparison WHERE language = 'macro' ORDER BY ndcg10 DESC"
echo "per language: pipelines/out/webfaq2/comparison/report.md"
