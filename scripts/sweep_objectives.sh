#!/usr/bin/env bash
# Every objective (train.loss) on both architectures, as DVC experiments: one MLflow run and
# one `dvc exp show` row each. Optimizer settings per objective follow the papers:
#   minimax, non_saturating, lsgan, hinge: Adam 2e-4, betas (0.5, 0.999), k = 1 (DCGAN paper)
#   wgan:    RMSprop 5e-5, k = 5, weight clipping 0.01          (Arjovsky et al. 2017)
#   wgan_gp: Adam 1e-4, betas (0.5, 0.9), k = 5, penalty 10      (Gulrajani et al. 2017)
# Usage: scripts/sweep_objectives.sh [EPOCHS] [NUM_SAMPLES] [ARCHS...]
#   e.g. scripts/sweep_objectives.sh 2 1000 mlp dcgan; then: dvc exp show --csv
# LOSSES="wgan wgan_gp" scripts/sweep_objectives.sh 10 500 dcgan runs only those objectives.
set -euo pipefail
epochs=${1:-2}
num_samples=${2:-1000}
shift $(($# < 2 ? $# : 2))
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(mlp dcgan)

for arch in "${archs[@]}"; do
  for loss in ${LOSSES:-minimax non_saturating lsgan hinge wgan wgan_gp}; do
    case $loss in
      wgan) opt=(-S train.optimizer=rmsprop -S train.lr_g=5e-5 -S train.lr_d=5e-5
                 -S train.d_steps=5 -S train.beta2=0.999) ;;
      wgan_gp) opt=(-S train.optimizer=adam -S train.lr_g=1e-4 -S train.lr_d=1e-4
                    -S train.d_steps=5 -S train.beta2=0.9) ;;
      *) opt=(-S train.optimizer=adam -S train.lr_g=2e-4 -S train.lr_d=2e-4
              -S train.d_steps=1 -S train.beta2=0.999) ;;
    esac
    echo "=== $arch $loss ==="
    dvc exp run --name "$arch-$loss-e$epochs" -S "model.arch=$arch" -S "train.loss=$loss" \
      -S "train.epochs=$epochs" -S "evaluate.num_samples=$num_samples" "${opt[@]}"
  done
done
dvc exp show --csv --drop '.*' --keep 'Experiment|model.arch|train.loss|train.epochs|fid_.*'
