#!/bin/bash
# The quality runs on a GPU machine, as one call of the `device` tool (see README.md here):
#   bash benchmarks/device/quality.sh BUNDLE/DATASET BUDGET_S "name k=v ...;name2 k=v ..."
# The first run is the timed whole pipeline (download -> prepare -> classifier -> train ->
# evaluate, the stages' commands in dvc.yaml's order, tracking off); the others train in
# parallel after it on the same prepared data and classifier, each killed at the budget.
# Then the floor, the first run scored with train.keep best, and everything packed
# into $OUT (results.tar.gz, up to six generators). Needs $OUT and the bundle (bundle.py).
set -u
DS=$1; BUDGET=$2; RUNS=$3
T0=$(date +%s)
REPO=$PWD
BUNDLE=$(dirname "$DS")
export PYTHONUNBUFFERED=1 PYTHONPATH=$REPO/src:$REPO/$BUNDLE/pylib PYTHONDONTWRITEBYTECODE=1
R=/tmp/quality_$(basename "$DS"); mkdir -p $R/logs; cd $R
W=/tmp/quality_weights/inception.pth
if [ ! -f $W ] && [ -f $REPO/$BUNDLE/inception16.pt ]; then
  mkdir -p $(dirname $W)
  python3 -c "import sys; sys.path.insert(0, '$REPO'); from benchmarks.device.bundle import full_weights; from pathlib import Path; full_weights(Path('$REPO/$BUNDLE/inception16.pt'), Path('$W'))"
fi
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, torchmetrics; print('torch', torch.__version__, 'torchmetrics', torchmetrics.__version__)"
  [ -f $W ] && echo "inception: fp16-rounded weights cast to fp32" || echo "inception: none (no FID)"; } > gpu.txt 2>&1
python3 $REPO/benchmarks/device/runs.py $REPO/$DS $W $R "$RUNS"
G() { python3 -m ganops "$@"; }
t() { local name=$1; shift; local s=$(date +%s%N); "$@" > logs/$name.log 2>&1; local rc=$?
      echo "$name rc=$rc ms=$(( ($(date +%s%N)-s)/1000000 ))" >> times.txt; return $rc; }
left() { local l=$(( BUDGET - ($(date +%s) - T0) )); echo $(( l > 30 ? l : 30 )); }
FIRST=${RUNS%%;*}; FIRST=${FIRST%% *}; P=p_$FIRST.yaml
CLS=outputs/classifier/classifier.pt
EV="--data data/prepared --cache data/fid_cache --classifier $CLS"
TR="--data data/prepared --classifier $CLS"
t download G download --out data/raw -p $P
t prepare G prepare --raw data/raw --out data/prepared -p $P
t classifier G classifier --data data/prepared --out outputs/classifier -p $P
t train_$FIRST timeout $(left) python3 -m ganops train $TR --models m_$FIRST --out o_$FIRST/train -p $P
t eval_$FIRST G evaluate $EV --models m_$FIRST --train-out o_$FIRST/train --out o_$FIRST/evaluate -p $P
echo "pipeline_total s=$(( $(date +%s) - T0 ))" >> times.txt
for name in $(echo "$RUNS" | tr ';' '\n' | tail -n +2 | awk '{print $1}'); do
  ( t train_$name timeout $(( $(left) - 40 )) python3 -m ganops train $TR --models m_$name --out o_$name/train -p p_$name.yaml
    t eval_$name G evaluate $EV --models m_$name --train-out o_$name/train --out o_$name/evaluate -p p_$name.yaml ) &
done
( t graphs_test timeout 150 python3 -m pytest -q -x -p no:cacheprovider $REPO/tests/unit/test_graphs.py ) &
t floor G evaluate $EV --floor --out o_floor -p $P
sed 's/keep: last/keep: best/' $P > p_best.yaml
t eval_${FIRST}_best G evaluate $EV --models m_$FIRST --train-out o_$FIRST/train --out o_$FIRST/evaluate_best -p p_best.yaml
wait
echo "all s=$(( $(date +%s) - T0 ))" >> times.txt
tar czf $OUT/results.tar.gz gpu.txt times.txt logs p_*.yaml o_*/evaluate*/*.json o_floor o_*/train/*.csv o_*/train/samples.png 2>/dev/null
n=0; for m in m_*; do [ -f $m/generator.pt ] && [ $n -lt 6 ] && cp $m/generator.pt $OUT/${m#m_}.pt && n=$((n+1)); done
cat gpu.txt times.txt; for f in o_*/evaluate*/metrics.json o_floor/*.json; do echo "$f $(tr -d ' \n' < $f | head -c 300)"; done
