#!/usr/bin/env bash
# Train one setting of the search (benchmarks/search/settings.tsv) at the CPU-variant budget,
# untracked, one torch thread, keeping every checkpoint's generator (train.snapshots):
#
#   benchmarks/search/train_setting.sh NAME [ROOT]
#
# ROOT (default $GANOPS_SEARCH_ROOT, else /tmp/ganops-search) gets common/ (the prepared
# MNIST and the classifier, made once) and NAME/ (params.yaml, models/, train.log). Running
# it again resumes an interrupted run (ganops train's own resume). MNIST comes from
# $GANOPS_DATA_SOURCE (default ../shared/datasets/mnist beside the repo). Each setting is
# also a `dvc exp run` (docs/results.md lists those commands); this runs the train stage
# alone so two settings can share the two cores with one thread each.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
name=${1:?usage: train_setting.sh NAME [ROOT]}
root=${2:-${GANOPS_SEARCH_ROOT:-/tmp/ganops-search}}
source=$(realpath "${GANOPS_DATA_SOURCE:-$repo/../shared/datasets/mnist}")
line=$(awk -F'\t' -v n="$name" '$1 == n {print; found=1} END {exit !found}' "$repo/benchmarks/search/settings.tsv") \
  || { echo "error: no setting $name in benchmarks/search/settings.tsv" >&2; exit 2; }
overrides=$(printf '%s\n' "$line" | cut -s -f2)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
common=$root/common
if [ ! -f "$common/outputs/classifier/classifier.pt" ]; then
  mkdir -p "$common"
  python - "$repo/params.yaml" "$common/params.yaml" "$source" <<'PY'
import sys, yaml
params = yaml.safe_load(open(sys.argv[1]))
params["data"]["source"] = sys.argv[3]
params["tracking"]["enabled"] = False
yaml.safe_dump(params, open(sys.argv[2], "w"), sort_keys=False)
PY
  (cd "$common" && ganops download --out data/raw && ganops prepare --raw data/raw --out data/prepared \
    && ganops classifier --data data/prepared --out outputs/classifier)
fi
run=$root/$name
mkdir -p "$run"
if [ ! -f "$run/params.yaml" ]; then
  # shellcheck disable=SC2086  # the overrides are words: key=value ...
  python - "$common/params.yaml" "$run/params.yaml" model.dcgan_channels=32 train.epochs=30 \
    train.snapshots=true $overrides <<'PY'
import sys, yaml
from ganops.config import Params, to_flat_dict
params = yaml.safe_load(open(sys.argv[1]))
known = to_flat_dict(Params())  # the schema's keys: a file may leave some out
for pair in sys.argv[3:]:
    key, value = pair.split("=", 1)
    if key not in known:
        sys.exit(f"error: {key} is not a params key (docs/params.md lists them)")
    section, name = key.split(".")
    params[section][name] = yaml.safe_load(value)
yaml.safe_dump(params, open(sys.argv[2], "w"), sort_keys=False)
PY
fi
cd "$run"
start=$(date +%s)
ganops train --data "$common/data/prepared" --models models --out outputs/train \
  --classifier "$common/outputs/classifier/classifier.pt" --resume-dir resume >> train.log 2>&1
echo "$name trained in $(( $(date +%s) - start )) s this session (train.log has the run's own seconds)"
