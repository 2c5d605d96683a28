#!/bin/bash
# The 3-epoch check of the methods after DKD on Fashion-MNIST (figures/fashion_mnist_new_methods.md): a resnet20
# teacher, 3 epochs on 2000 images, then resnet8 students, 3 epochs, seeds 0-1. Needs the teacher first:
#   realdata train --model resnet20 --dataset fashion_mnist --data-dir /usr/share/datasets/fashion-mnist --train-size 2000 \
#       --epochs 3 --batch-size 64 --eval-batch-size 500 --device cpu --out runs/fm-new/teacher
# Cost on this CPU (Intel Xeon, 1 thread, beside two other jobs): about 20 minutes.
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
T=runs/fm-new/teacher/last.pt
C="--student resnet8 --dataset fashion_mnist --data-dir /usr/share/datasets/fashion-mnist --train-size 2000 --epochs 3 --batch-size 64 --eval-batch-size 500 --device cpu --no-progress"
for seed in 0 1; do
  .venv/bin/realdata train --model resnet8 --dataset fashion_mnist --data-dir /usr/share/datasets/fashion-mnist --train-size 2000 --epochs 3 --batch-size 64 --eval-batch-size 500 --device cpu --no-progress --seed $seed --out runs/fm-new/ce/s$seed
  for m in kd dist wttm ctkd reviewkd ofd crd+kd; do
    .venv/bin/realdata distill --teacher $T --method $m $C --seed $seed --out runs/fm-new/$m/s$seed
  done
  .venv/bin/realdata distill --teacher $T --method kd --param logit_stand=1 --param temperature=2 --param kd_weight=9 $C --seed $seed --out runs/fm-new/kd-ls/s$seed
  .venv/bin/realdata distill --teacher $T --method kd --optimizer dot $C --seed $seed --out runs/fm-new/kd-dot/s$seed
  .venv/bin/realdata distill --teacher $T --method mlkd --strong-view $C --seed $seed --out runs/fm-new/mlkd/s$seed
  .venv/bin/realdata distill --teacher $T --method dkd --param logit_stand=1 --param temperature=2 --param alpha=9 --param beta=72 $C --seed $seed --out runs/fm-new/dkd-ls/s$seed
  .venv/bin/realdata distill --teacher $T --method mlkd --strong-view --param logit_stand=1 --param temperature=2 --param kd_weight=9 $C --seed $seed --out runs/fm-new/mlkd-ls/s$seed
done
echo ALLDONE
