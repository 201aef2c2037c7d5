#!/usr/bin/env bash
# The paper's temperature sweep (table 5b): one student per temperature, from stored soft targets.
set -euo pipefail
config=""
temperatures="1 2 5 10"
reference=2          # the recipe's temperature: every other one is compared with it
help_message="Usage: $0 [options] ALI_DIR ENSEMBLE_DIR EXP
For each T of --temperatures: the ensemble's soft targets EXP/soft_TT and one student EXP/stored_TT
(seed 101; stored targets of the clean training frames, the config's student schedule: what the targets
carry, not how the student is taught); table EXP/kd/table_5b_temperature, into EXP/kd/RESULTS.md.
  --config FILE         YAML config [$config]
  --temperatures LIST   [$temperatures]
  --reference T         compared with each other temperature (paired bootstrap on the test frames) [$reference]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 3 $# "ALI_DIR ENSEMBLE_DIR EXP"
ali=$1 ensemble=$2 exp=$3
steps=$(dirname "$0")
rows=() labels=() pairs=()
for t in $temperatures; do
  python -m asr_kd soft-targets --teachers "$ensemble" --ali-dir "$ali" --nj "$nj" --temperature "$t" --out "$exp/soft_T$t"
  "$steps/distill.sh" ${config:+--config "$config"} --nj "$nj" --temperature "$t" --train-opts "--no-online-teacher --augment none" \
    "$ali" "$ensemble" "$exp/soft_T$t" "$exp/stored_T$t"
  rows+=("T$t=$exp/stored_T$t") labels+=("T$t=T=$t")
  [[ " $temperatures " == *" $reference "* ]] && [ "$t" != "$reference" ] && pairs+=("T$reference,T$t")
done
python -m asr_kd frame-table --ali-dir "$ali" --results-md "$exp/kd/RESULTS.md" --rows "${rows[@]}" --labels "${labels[@]}" \
  --out "$exp/kd/table_5b_temperature" ${pairs[@]+--compare "${pairs[@]}"} \
  --title "(5b) Distilled students by soft-target temperature (hard weight $(hard_weight "$config"), T^2-scaled soft term)"
