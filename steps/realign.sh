#!/usr/bin/env bash
# Realignment with the DNN ensemble: does a network trained on the ensemble's alignment beat one trained
# on the GMM's? (table_alignments; both scored against the oracle phones and decoded).
set -euo pipefail
config=""
seeds=3                   # DNNs per alignment (seeds 1..N; the ensemble's own members on the GMM labels)
oracle_reference=""       # a GMM trained on oracle phone times (EXP/mono_oracle) as a third row; empty: none
manifest_dir=""
lmwt=1,2,3,5,8,13
wip=0,1
decode_opts=""
help_message="Usage: $0 [options] ALI_DIR ENSEMBLE_DIR LANG_DIR EXP
Realigns every split with the ensemble (EXP/dnn_ali), trains --seeds DNNs on it (EXP/dnn_realigned; on
--oracle-reference's alignment: EXP/dnn_oracle_gmm, same seeds and threads as the members, so only the
labels differ) and tables their frame accuracy, oracle-phone agreement and WER (graph EXP/graph) against
the members trained on ALI_DIR: EXP/kd/table_alignments, into EXP/kd/RESULTS.md.
  --config FILE  [$config]   --seeds N [$seeds]   --oracle-reference DIR [$oracle_reference]
  --manifest-dir DIR   transcripts for the LM [$manifest_dir]
  --lmwt LIST / --wip LIST   the dev tuning grid [$lmwt / $wip]   --decode-opts OPTS [$decode_opts]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 4 $# "ALI_DIR ENSEMBLE_DIR LANG_DIR EXP"
ali=$1 ensemble=$2 lang=$3 exp=$4
read_models members "$ensemble"
n=$(( ${#members[@]} < seeds ? ${#members[@]} : seeds ))
mkdir -p "$exp/log"
fbank=$(recorded "$ali" fbank_dir)
python -m asr_kd realign-dnn ${config:+--config "$config"} --models "$ensemble" --gmm-dir "$ali" --lang "$lang" --fbank-dir "$fbank" \
  --out "$exp/dnn_ali"
label_dirs=("$exp/dnn_ali=$exp/dnn_realigned")
[ -n "$oracle_reference" ] && label_dirs+=("$oracle_reference=$exp/dnn_oracle_gmm")
for pair in "${label_dirs[@]}"; do
  labels=${pair%%=*} out=${pair#*=}
  for seed in $(seq 1 "$n"); do
    bg_job "$exp/log/$(basename "$out")_seed$seed.log" python -m asr_kd train-dnn ${config:+--config "$config"} \
      --ali-dir "$labels" --seed "$seed" --out "$out/seed$seed"
  done
done
bg_wait || { tail -n 5 "$exp"/log/dnn_realigned_seed*.log "$exp"/log/dnn_oracle_gmm_seed*.log 2>/dev/null; exit 1; }
ckpts() { for seed in $(seq 1 "$n"); do echo "$1/seed$seed/best.pt"; done | paste -sd, -; }
rows=("gmm=$ali=$(ckpts "$ensemble")" "realigned=$exp/dnn_ali=$(ckpts "$exp/dnn_realigned")")
labels=("gmm=GMM ($(system_name "$(basename "$ali")"))" "realigned=realigned with the ${#members[@]}-DNN ensemble")
if [ -n "$oracle_reference" ]; then
  rows+=("oracle_gmm=$oracle_reference=$(ckpts "$exp/dnn_oracle_gmm")")
  labels+=("oracle_gmm=reference: GMM trained on oracle phone times")
fi
decode_python
# shellcheck disable=SC2086  # decode_opts is a list of options
"$DECODE_PY" -m asr_kd alignment-table --rows "${rows[@]}" --labels "${labels[@]}" --fbank-dir "$fbank" --lang "$lang" --manifest-dir "$manifest_dir" \
  --graph-dir "$exp/graph" --nj "$nj" --lmwt "$lmwt" --wip "$wip" $decode_opts \
  --out "$exp/kd/table_alignments" --results-md "$exp/kd/RESULTS.md" \
  --title "Which alignment gives the better DNN (test set)"
