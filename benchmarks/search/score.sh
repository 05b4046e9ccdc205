#!/usr/bin/env bash
# Score the search's finished settings with benchmarks/proxy_study.py (fid_10k and the cheap
# proxies from one pass, one thread), appending to benchmarks/results/search-mnist.jsonl:
#
#   benchmarks/search/score.sh NAME... ; then: python benchmarks/proxy_study.py \
#     --out benchmarks/results/search-mnist.jsonl --report
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
root=${GANOPS_SEARCH_ROOT:-/tmp/ganops-search}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=$repo/src
files=()
for name in "$@"; do files+=("$root/$name/models/generator.pt"); done
python "$repo/benchmarks/proxy_study.py" --data "$root/common/data/prepared" \
  --classifier "$root/common/outputs/classifier/classifier.pt" --cache "$root/fid_cache" \
  --out "$repo/benchmarks/results/search-mnist.jsonl" "${files[@]}"
