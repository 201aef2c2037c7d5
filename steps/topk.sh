#!/usr/bin/env bash
# Top-k vs. dense soft targets (table 5d): accuracy and storage.
set -euo pipefail
config=""
temperature=2
topk_values="5 20"
help_message="Usage: $0 [options] ALI_DIR ENSEMBLE_DIR EXP
The dense row is the temperature sweep's student EXP/stored_TT (trained here when that step was not run,
from EXP/soft_TT); for each k of --topk-values, top-k soft targets EXP/soft_TT_topK and a student
EXP/student_TT_topK; table EXP/kd/table_5d_topk, into EXP/kd/RESULTS.md.
  --config FILE        YAML config [$config]
  --temperature T      [$temperature]
  --topk-values LIST   [$topk_values]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 3 $# "ALI_DIR ENSEMBLE_DIR EXP"
ali=$1 ensemble=$2 exp=$3
steps=$(dirname "$0") t=$temperature
stored="--no-online-teacher --augment none"
student() {  # student SOFT_DIR OUT_DIR
  "$steps/distill.sh" ${config:+--config "$config"} --nj "$nj" --temperature "$t" --train-opts "$stored" "$ali" "$ensemble" "$1" "$2"
}
rows=("dense=$exp/stored_T$t") storage=("dense=$exp/soft_T$t") pairs=()
student "$exp/soft_T$t" "$exp/stored_T$t"
for k in $topk_values; do
  pairs+=("dense,top-$k")
  python -m asr_kd soft-targets --teachers "$ensemble" --ali-dir "$ali" --nj "$nj" --temperature "$t" --topk "$k" \
    --out "$exp/soft_T${t}_top$k"
  student "$exp/soft_T${t}_top$k" "$exp/student_T${t}_top$k"
  rows+=("top-$k=$exp/student_T${t}_top$k")
  storage+=("top-$k=$exp/soft_T${t}_top$k")
done
python -m asr_kd frame-table --ali-dir "$ali" --results-md "$exp/kd/RESULTS.md" --rows "${rows[@]}" \
  --storage "${storage[@]}" --compare "${pairs[@]}" --out "$exp/kd/table_5d_topk" \
  --title "(5d) Top-k vs. dense soft targets (T=$t)"
