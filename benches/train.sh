#!/bin/sh
# Fine-tuning speed on the CPU: MNRL steps with a query, its positive and 4
# hard negatives per example (6 texts, max length 128), batch 16, AdamW,
# 2 threads: dflow's `train` (Burn, Flex backend under autodiff) against
# sentence-transformers (PyTorch) on the same model and rows. Both time
# STEPS steps after a first one (dflow: the pace after the first step that
# `train` reports in its run-log note).
# LOSS=margin_mse times distillation instead (`op: distill`, MarginMSE over
# the 4 negatives' teacher margins, against sentence-transformers'
# MarginMSELoss with 4 negatives).
# PARAMS adds params to dflow's node (e.g. PARAMS="attention_dropout: 0";
# the Python side keeps its dropout).
# GROUP=N sets train's `group_tokens` (padded tokens per forward pass;
# GROUP=1000000 pads a step's candidates as one batch). On a GPU:
# DEVICE=cuda PRECISION=bf16 GROUP=16384 (a `--features cuda` build), and
# the Python side runs on the same device under bf16 autocast.
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
steps=$((STEPS + 1))
case "${LOSS:-mnrl}" in
  mnrl) OP=train ;;
  margin_mse) OP=distill ;;
  *) echo "LOSS is mnrl or margin_mse" >&2; exit 2 ;;
esac
cat > "$W/p.yaml" <<YAML
version: 1
name: train_bench
nodes:
  rows:  { op: jsonl, params: { paths: ["$ROWS"] } }
  model: { op: model, params: { source: "path:$MODEL" } }
  train:
    op: ${OP}
    inputs: { pairs: rows, model: model }
    params: { negatives: negatives, num_hard_negatives: 4, batch_size: $BATCH, max_steps: $steps, max_length: 128, warmup_steps: 0, max_grad_norm: 1.0, ${PARAMS:+$PARAMS, }precision: ${PRECISION:-f32}${GROUP:+, group_tokens: $GROUP} }
    resources: { device: "${DEVICE:-cpu}" }
YAML
# Peak resident memory too, where GNU time is installed. Run with
# MIMALLOC_PURGE_DECOMMITS=1 to compare eager memory return (dflow keeps
# a value set by the user).
if [ -x /usr/bin/time ]; then
  /usr/bin/time -f "dflow run, $steps steps: %e s wall, peak resident %M KB" \
    target/debug/dflow run "$W/p.yaml" --quiet
else
  target/debug/dflow run "$W/p.yaml" --quiet
fi
# The steps after the first, as `train` timed them (its note in the run
# log; wall times stay out of the content-addressed `log` table): no model
# load, no first step.
note=$(target/debug/dflow sql "$W/p.yaml" --format csv "SELECT note FROM dflow_runs WHERE node = 'train' AND status = 'computed' ORDER BY started_unix_ms DESC LIMIT 1" | tail -1)
echo "dflow train: $note"
s=$(python3 -c "import re, sys; print(float(re.search(r'; ([0-9.]+) s/step after the first', sys.argv[1]).group(1)) * $STEPS)" "$note")
python3 -c "s = $s; n = $STEPS * $BATCH; print(f'dflow (Burn, ${DEVICE:-cpu}, ${PRECISION:-f32}): {n} examples in {s:.1f} s = {n / s:.2f} examples/s ({s / $STEPS:.2f} s/step)')"
python3 benches/train_python.py "$MODEL" "$ROWS" "$STEPS" "$BATCH" "${DEVICE:-cpu}" "${PRECISION:-f32}" "${LOSS:-mnrl}"
