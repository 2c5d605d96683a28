#!/usr/bin/env bash
# The Fashion-MNIST results table: resnet20 teachers -> resnet8 students, the standard recipe scaled to $EPOCHS.
#
#   teachers: resnet20, seeds 0, 1, 2 (cross-entropy); seed 0 is the single teacher, all three the ensemble
#   students (seeds 0, 1, 2 each): ce (alone), kd, fkd, sp, rkd, pkt from teacher seed 0,
#                                  and fkd, kd from the ensemble of the 3 teachers
#   table:    OUT/table.md (realdata report: last and best test accuracy, mean ± std over the seeds)
#
# Every command passes --resume, so the script can be stopped and run again: finished runs are left as they are,
# unfinished ones continue from their last.pt. Variables (environment): EPOCHS (default 10), OUT (runs/fmnist),
# DATA_DIR (data; the Debian package's /usr/share/datasets/fashion-mnist is also looked in), DEVICE (auto),
# REALDATA (the command, default: realdata beside this venv's python, else on PATH).
#   EPOCHS=10 OUT=runs/fmnist bash scripts/fashion_mnist_table.sh
set -euo pipefail

EPOCHS="${EPOCHS:-10}"
OUT="${OUT:-runs/fmnist}"
DATA_DIR="${DATA_DIR:-data}"
DEVICE="${DEVICE:-auto}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${REALDATA:-}" ]]; then
  if [[ -x "$HERE/.venv/bin/realdata" ]]; then REALDATA="$HERE/.venv/bin/realdata"; else REALDATA=realdata; fi
fi
SEEDS=(0 1 2)
COMMON=(--dataset fashion_mnist --data-dir "$DATA_DIR" --epochs "$EPOCHS" --device "$DEVICE" --resume --no-progress)

# 1. the teachers
for s in "${SEEDS[@]}"; do
  "$REALDATA" train --model resnet20 --seed "$s" --out "$OUT/teachers/resnet20-s$s" "${COMMON[@]}"
done
TEACHER="$OUT/teachers/resnet20-s0/last.pt"
ENSEMBLE=()
for s in "${SEEDS[@]}"; do ENSEMBLE+=(--teacher "$OUT/teachers/resnet20-s$s/last.pt"); done

# 2. the students
for s in "${SEEDS[@]}"; do
  "$REALDATA" train --model resnet8 --seed "$s" --out "$OUT/students/ce/s$s" "${COMMON[@]}"
  for m in kd fkd sp rkd pkt; do
    "$REALDATA" distill --teacher "$TEACHER" --student resnet8 --method "$m" --seed "$s" \
      --out "$OUT/students/$m/s$s" "${COMMON[@]}"
  done
  for m in fkd kd; do
    "$REALDATA" distill "${ENSEMBLE[@]}" --student resnet8 --method "$m" --seed "$s" \
      --out "$OUT/students/$m-ensemble3/s$s" "${COMMON[@]}"
  done
done

# 3. the table (the report groups runs by method and teacher(s) -> student: the ensemble rows read
#    "resnet20+resnet20+resnet20 -> resnet8")
"$REALDATA" report "$OUT/teachers" "$OUT/students" --output "$OUT/table.md"
