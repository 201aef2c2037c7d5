#!/usr/bin/env bash
# Every GMM system decoded, and the network stages repeated on other systems' labels (the systems table).
set -euo pipefail
config=""
manifest_dir=""
systems="mono tri1 tri2"     # the GMM systems trained (EXP/SYSTEM)
labels=mono                  # the system the recipe's networks trained on (their decode: EXP/decode)
label_systems="mono tri2"    # systems whose labels get their own ensemble, students and decode (EXP/labels_SYSTEM)
members=4
seeds=2
temperature=2
ddp_procs=1
lmwt=1,2,3,5,8,13
wip=0,1
decode_opts=""
k2_opts=""
k2_members=all
help_message="Usage: $0 [options] EXP
For each of --systems: the recipe's labels are decoded already (EXP/decode); a --label-systems system gets
the network stages again on its labels (ensemble, soft targets, students, decode, k2: EXP/labels_SYSTEM, a
loop over the alignment folder); any other is decoded alone on its own graph (EXP/SYSTEM/decode). Then the
table of pdfs, Gaussians, oracle alignment accuracy, HCLG size and WER: EXP/kd/table_systems.
  --config FILE [$config]  --manifest-dir DIR [$manifest_dir]  --systems LIST [$systems]  --labels SYSTEM [$labels]
  --label-systems LIST [$label_systems]  --members N [$members]  --seeds N [$seeds]  --temperature T [$temperature]
  --ddp-procs N [$ddp_procs]  --lmwt LIST / --wip LIST [$lmwt / $wip]  --decode-opts OPTS [$decode_opts]
  --k2-opts OPTS [$k2_opts]  --k2-members N [$k2_members]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 1 $# "EXP"
exp=$1 steps=$(dirname "$0") t=$temperature
common=(--nj "$nj" --config "$config")  # a step given --config "" takes every section's defaults
search=(--lmwt "$lmwt" --wip "$wip" --decode-opts "$decode_opts")
decoded=()
for sys in $systems; do
  if [ "$sys" = "$labels" ]; then
    decoded+=("$sys=$exp/decode")
  elif [[ " $label_systems " == *" $sys "* ]]; then
    nn=$exp/labels_$sys
    mkdir -p "$nn/kd"
    "$steps/train_ensemble.sh" "${common[@]}" --ddp-procs "$ddp_procs" --members "$members" "$exp/$sys" "$nn/dnn"
    python -m asr_kd soft-targets --teachers "$nn/dnn" --ali-dir "$exp/$sys" --nj "$nj" --temperature "$t" --out "$nn/soft_T$t"
    "$steps/distill.sh" "${common[@]}" --ddp-procs "$ddp_procs" --seeds "$seeds" --temperature "$t" \
      "$exp/$sys" "$nn/dnn" "$nn/soft_T$t" "$nn/student_T$t"
    "$steps/decode_systems.sh" "${common[@]}" "${search[@]}" --manifest-dir "$manifest_dir" --temperature "$t" \
      "$exp/$sys" "$nn/dnn" "$nn/student_T$t" "$nn/decode"
    "$steps/k2_decode.sh" --members "$k2_members" --k2-opts "$k2_opts" "$nn/decode" "$nn/decode_k2"
    decoded+=("$sys=$nn/decode")
  else  # the GMM alone, on its own graph (EXP/SYSTEM/graph), with k2 beside Kaldi's decoder
    mkdir -p "$exp/$sys/kd"
    decode_python
    # shellcheck disable=SC2086  # decode_opts is a list of options
    "$DECODE_PY" -m asr_kd decode --ali-dir "$exp/$sys" --manifest-dir "$manifest_dir" --graph-dir "$exp/$sys/graph" \
      --out "$exp/$sys/decode" --nj "$nj" --lmwt "$lmwt" --wip "$wip" $decode_opts --results-md "$exp/$sys/kd/RESULTS.md" \
      --models "gmm=$exp/$sys/final.mdl" --labels "gmm=GMM ($(system_name "$sys"))" --title "GMM ($(system_name "$sys"))"
    "$steps/k2_decode.sh" --members "$k2_members" --k2-opts "$k2_opts" "$exp/$sys/decode" "$exp/$sys/decode_k2"
    decoded+=("$sys=$exp/$sys/decode")
  fi
done
python -m asr_kd systems-table --exp "$exp" --decoded "${decoded[@]}" --out "$exp/kd/table_systems" \
  --results-md "$exp/kd/RESULTS.md" \
  --title "GMM systems (monophone, triphone trees) and the networks trained on their labels (test set)"
