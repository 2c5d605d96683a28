#!/usr/bin/env bash
# The Fashion-MNIST results table and learning-curve figure: resnet20 teachers -> resnet8 students.
#
#   data:     a class-balanced subset of TRAIN_SIZE training images (the same for every run), the whole test set
#   teachers: resnet20, seeds 0 and 1, EPOCHS epochs (cross-entropy); seed 0 is the single teacher, both the ensemble
#   students: resnet8, seeds 0, 1, 2, STUDENT_EPOCHS epochs: ce (alone), kd, fkd, sp, rkd, pkt from teacher seed 0,
#             and fkd, kd from the ensemble of the 2 teachers
#   outputs:  OUT/table.md (realdata report: last and best test accuracy, mean ± 95% interval over the seeds) and
#             OUT/curves.png (realdata plot: test accuracy per epoch, mean ± std over the seeds)
#
# Every command passes --resume, so the script can be stopped and run again: finished runs are left as they are,
# unfinished ones continue from their last.pt. JOBS runs go side by side (each with THREADS threads).
# Variables (environment): EPOCHS (8), STUDENT_EPOCHS (5), TRAIN_SIZE (5000), JOBS (1), THREADS (cores / JOBS), EVAL_BATCH (100:
# on a CPU the test pass is about twice as fast as with realdata's GPU default of 1000), OUT (runs/fmnist),
# DATA_DIR (data; the Debian package's /usr/share/datasets/fashion-mnist is also looked in), DEVICE (auto),
# REALDATA (the command, default: realdata beside this venv's python, else on PATH).
#   JOBS=2 bash scripts/fashion_mnist_table.sh
set -euo pipefail

EPOCHS="${EPOCHS:-8}"
STUDENT_EPOCHS="${STUDENT_EPOCHS:-5}"
TRAIN_SIZE="${TRAIN_SIZE:-5000}"
JOBS="${JOBS:-1}"
THREADS="${THREADS:-$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))}"
OUT="${OUT:-runs/fmnist}"
DATA_DIR="${DATA_DIR:-data}"
DEVICE="${DEVICE:-auto}"
EVAL_BATCH="${EVAL_BATCH:-100}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${REALDATA:-}" ]]; then
  if [[ -x "$HERE/.venv/bin/realdata" ]]; then REALDATA="$HERE/.venv/bin/realdata"; else REALDATA=realdata; fi
fi
TEACHER_SEEDS=(0 1)
SEEDS=(0 1 2)
COMMON="--dataset fashion_mnist --data-dir $DATA_DIR --train-size $TRAIN_SIZE --device $DEVICE"
COMMON="$COMMON --eval-batch-size $EVAL_BATCH --resume --no-progress"

# run_all: read one realdata command line (arguments after "realdata") per line; run JOBS at a time, each logging
# to <run folder>.log; stop with the failing command's log if any fails.
run_all() {
  OMP_NUM_THREADS="$THREADS" xargs -P "$JOBS" -I{} -d '\n' bash -c '
    out=$(sed -E "s/.*--out ([^ ]+).*/\1/" <<< "$1"); mkdir -p "$(dirname "$out")"
    if ! '"$REALDATA"' $1 > "$out.log" 2>&1; then echo "failed: realdata $1" >&2; tail -3 "$out.log" >&2; exit 255; fi
    echo "done: $out"' _ {}
}

# 1. the teachers
for s in "${TEACHER_SEEDS[@]}"; do
  echo "train --model resnet20 --seed $s --epochs $EPOCHS --out $OUT/teachers/resnet20-s$s $COMMON"
done | run_all
TEACHER="--teacher $OUT/teachers/resnet20-s0/last.pt"
ENSEMBLE=""
for s in "${TEACHER_SEEDS[@]}"; do ENSEMBLE="$ENSEMBLE --teacher $OUT/teachers/resnet20-s$s/last.pt"; done
COMMON="--epochs $STUDENT_EPOCHS $COMMON"

# 2. the students
for s in "${SEEDS[@]}"; do
  echo "train --model resnet8 --seed $s --out $OUT/students/ce/s$s $COMMON"
  for m in kd fkd sp rkd pkt; do
    echo "distill $TEACHER --student resnet8 --method $m --seed $s --out $OUT/students/$m/s$s $COMMON"
  done
  for m in fkd kd; do
    echo "distill$ENSEMBLE --student resnet8 --method $m --seed $s --out $OUT/students/$m-ensemble2/s$s $COMMON"
  done
done | run_all

# 3. the table and the figure (runs are grouped by method and teacher(s) -> student: the ensemble rows read
#    "resnet20+resnet20 -> resnet8")
"$REALDATA" report "$OUT/teachers" "$OUT/students" --output "$OUT/table.md"
"$REALDATA" plot "$OUT/students" -o "$OUT/curves.png" \
  --title "Fashion-MNIST, $TRAIN_SIZE training images, resnet20 teachers -> resnet8 students (mean ± std, 3 seeds)"
