#!/bin/sh
# Fine-tuning speed on the CPU: MNRL steps with a query, its positive and 4
# hard negatives per example (6 texts, max length 128), batch 16, AdamW,
# 2 threads: dflow's `train` (Burn, Flex backend under autodiff) against
# sentence-transformers (PyTorch) on the same model and rows.
# Needs scripts/fetch_models.sh MODELS, `cargo build --workspace
# --all-targets`, `pip install torch sentence-transformers`, and the
# sample's hard negatives (`dflow run pipelines/webfaq2.yaml` writes
# pipelines/out/webfaq2/hard_negatives.jsonl).
set -e
cd "$(dirname "$0")/.."
MODELS=${1:?usage: benches/train.sh MODELS_DIR [STEPS] [BATCH]}
STEPS=${2:-10}
BATCH=${3:-16}
MODEL="$MODELS/all-MiniLM-L6-v2"
ROWS=$PWD/pipelines/out/webfaq2/hard_negatives.jsonl
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for steps in 1 $((STEPS + 1)); do
  cat > "$W/p$steps.yaml" <<YAML
version: 1
name: train_bench_$steps
nodes:
  rows:  { op: jsonl, params: { paths: ["$ROWS"] } }
  model: { op: model, params: { source: "path:$MODEL" } }
  train:
    op: train
    inputs: { pairs: rows, model: model }
    params: { negatives: negatives, num_hard_negatives: 4, batch_size: $BATCH, max_steps: $steps, max_length: 128, warmup_steps: 0, max_grad_norm: 1.0 }
YAML
  # Peak resident memory too, where GNU time is installed. Run with
  # MIMALLOC_PURGE_DECOMMITS=1 to compare eager memory return (dflow keeps
  # a value set by the user).
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "dflow run, $steps step(s): %e s wall, peak resident %M KB" \
      target/debug/dflow run "$W/p$steps.yaml" --quiet
  else
    target/debug/dflow run "$W/p$steps.yaml" --quiet
  fi
done
# The difference of the two runs' train seconds: $STEPS steps without the
# model load and the first step.
one=$(target/debug/dflow sql "$W/p1.yaml" --format csv "SELECT seconds FROM dflow_runs WHERE node = 'train' AND status = 'computed' AND pipeline = 'train_bench_1'" | tail -1)
many=$(target/debug/dflow sql "$W/p$((STEPS + 1)).yaml" --format csv "SELECT seconds FROM dflow_runs WHERE node = 'train' AND status = 'computed' AND pipeline = 'train_bench_$((STEPS + 1))'" | tail -1)
python3 -c "s = $many - $one; n = $STEPS * $BATCH; print(f'dflow (Burn Flex, 2 threads): {n} examples in {s:.1f} s = {n / s:.2f} examples/s ({s / $STEPS:.2f} s/step)')"
python3 benches/train_python.py "$MODEL" "$ROWS" "$STEPS" "$BATCH"
