# Shared by benches/sample_s3.sh and benches/sample_cluster.sh (sourced, not
# run): the sample's `webfaq2.yaml --until unique`, timed cold in a fresh
# project directory. Needs WORK (a scratch directory) and DFLOW (the binary).

project() { # a fresh directory with the pipeline file (and the sample when local)
  rm -rf "$WORK/p"; mkdir -p "$WORK/p"; cp pipelines/webfaq2.yaml "$WORK/p/"
  if [ "${1:-}" = local ]; then ln -s "$PWD/pipelines/sample" "$WORK/p/sample"; fi
}

timed() { # label, args...
  local label=$1; shift
  local t0 t1; t0=$(date +%s.%N)
  (cd "$WORK/p" && "$DFLOW" run webfaq2.yaml --until unique --quiet "$@")
  t1=$(date +%s.%N)
  printf '%-36s %6.2f s\n' "$label" "$(echo "$t1 - $t0" | bc)"
}
