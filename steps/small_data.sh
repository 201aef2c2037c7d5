#!/usr/bin/env bash
# The paper's "3% of the training data" (table 5c): hard labels vs. soft targets of the full-data ensemble.
set -euo pipefail
config=""
fraction=0.03
temperature=2
help_message="Usage: $0 [options] ALI_DIR ENSEMBLE_DIR SOFT_DIR EXP
Two networks (seed 1, 20 epochs) on --fraction of ALI_DIR's training data, EXP/small/hard (hard labels)
and EXP/small/soft (the stored soft targets SOFT_DIR of the ensemble in ENSEMBLE_DIR, which saw all of
it); table EXP/kd/table_5c_small_data, into EXP/kd/RESULTS.md.
  --config FILE        YAML config [$config]
  --fraction F         share of the training utterances [$fraction]
  --temperature T      SOFT_DIR's temperature [$temperature]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 4 $# "ALI_DIR ENSEMBLE_DIR SOFT_DIR EXP"
ali=$1 ensemble=$2 soft=$3 exp=$4
f=$fraction
mkdir -p "$exp/log"
python -m asr_kd train-dnn ${config:+--config "$config"} --ali-dir "$ali" --seed 1 --fraction "$f" --epochs 20 \
  --out "$exp/small/hard" > "$exp/log/small_hard.log" 2>&1
python -m asr_kd train-dnn ${config:+--config "$config"} --ali-dir "$ali" --seed 1 --fraction "$f" --epochs 20 \
  --temperature "$temperature" --soft-targets "$soft" --teacher-models "$ensemble" --no-online-teacher --augment none \
  --out "$exp/small/soft" > "$exp/log/small_soft.log" 2>&1
python -m asr_kd frame-table --ali-dir "$ali" --results-md "$exp/kd/RESULTS.md" --train-fraction "$f" \
  --rows "baseline=$ensemble" "hard=$exp/small/hard/best.pt" "soft=$exp/small/soft/best.pt" \
  --labels "baseline=baseline, 100% of the training data" "hard=hard labels, $f of the data" \
           "soft=soft targets of the full-data ensemble, $f of the data" \
  --out "$exp/kd/table_5c_small_data" --compare hard,soft \
  --title "(5c) Soft targets as a regulariser: $f of the training data" \
  --note "The baseline row's train column is measured on the same subset (it saw all of the data)."
