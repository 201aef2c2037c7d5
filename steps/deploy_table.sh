#!/usr/bin/env bash
# Ship every system and measure what each costs to serve (the deployment table).
set -euo pipefail
config=""
manifest_dir=""
temperature=2
lmwt=1,2,3,5,8,13
wip=0,1
decode_opts=""
export_opts=""       # e.g. the decode stage's "--beam 12 --max-active 5000"
help_message="Usage: $0 [options] ALI_DIR ENSEMBLE_DIR SOFT_DIR STUDENT_DIR DECODE_DIR OUT_DIR
Trains quarter-width networks (EXP/small_baseline from hard labels, EXP/small_student distilled from the
ensemble through SOFT_DIR; EXP is DECODE_DIR's parent) and decodes them (OUT_DIR/decode_small); exports
the ensemble, its first member, the first student and both small networks as model directories under
OUT_DIR; then the deployment table (parameters, MFLOPs, size, memory, RTF and WER as served, streaming
vs. offline, export parity): OUT_DIR/deployment_table, into EXP/kd/RESULTS.md.
  --config FILE  [$config]   --manifest-dir DIR [$manifest_dir]   --temperature T [$temperature]
  --lmwt LIST / --wip LIST [$lmwt / $wip]   --decode-opts OPTS [$decode_opts]   --export-opts OPTS [$export_opts]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 6 $# "ALI_DIR ENSEMBLE_DIR SOFT_DIR STUDENT_DIR DECODE_DIR OUT_DIR"
ali=$1 ensemble=$2 soft=$3 students=$4 decode=$5 d=$6
exp=$(dirname "$decode") steps=$(dirname "$0")
read_models members "$ensemble"
read_models student_models "$students"
ens="${#members[@]}-model ensemble" stud="distilled student (T=$temperature)"
student=${student_models[0]}
small=$(( $(python -c "from asr_kd.utils.config import section; from asr_kd.nnet.models import ModelConfig; print(section('$config' or None, 'model', ModelConfig).hidden)") / 4 ))
mkdir -p "$d" "$exp/log"
# quarter-width networks, from hard labels and distilled from the ensemble (the paper: small models gain most)
bg_job "$exp/log/deploy_small_baseline.log" python -m asr_kd train-dnn ${config:+--config "$config"} --ali-dir "$ali" --seed 1 \
  --hidden "$small" --out "$exp/small_baseline/seed1"
"$steps/distill.sh" ${config:+--config "$config"} --nj "$nj" --temperature "$temperature" --train-opts "--hidden $small" \
  "$ali" "$ensemble" "$soft" "$exp/small_student" || { bg_wait; exit 1; }
bg_wait || { tail -n 5 "$exp/log/deploy_small_baseline.log"; exit 1; }
decode_python
# shellcheck disable=SC2086  # decode_opts is a list of options
"$DECODE_PY" -m asr_kd decode --ali-dir "$ali" --manifest-dir "$manifest_dir" --graph-dir "$exp/graph" --out "$d/decode_small" \
  --nj "$nj" --lmwt "$lmwt" --wip "$wip" $decode_opts --results-md "$exp/kd/RESULTS.md" \
  --models "small_baseline=$exp/small_baseline/seed1/best.pt" "small_student=$exp/small_student/seed101/best.pt" \
  --labels "small_baseline=small baseline (hidden $small)" "small_student=small student (hidden $small)" \
  --compare small_baseline,small_student \
  --title "Quarter-width networks (hidden $small): hard labels vs. distilled from the ensemble (T=$temperature)"
export_one() {  # export_one NAME DECODE_DIR OUT CHECKPOINTS...
  local name=$1 from=$2 to=$3; shift 3
  # shellcheck disable=SC2086  # export_opts is a list of options
  bg_job "$exp/log/export_$(basename "$to").log" python -m asr_kd export ${config:+--config "$config"} $export_opts \
    --name "$name" --decode-dir "$from" --out "$to" --checkpoints "$@"
}
export_one "$ens" "$decode" "$d/ensemble" "$ensemble"
export_one baseline "$decode" "$d/baseline" "${members[0]}"
export_one "$stud" "$decode" "$d/student" "$student"
export_one "small baseline" "$d/decode_small" "$d/small_baseline" "$exp/small_baseline/seed1/best.pt"
export_one "small student" "$d/decode_small" "$d/small_student" "$exp/small_student/seed101/best.pt"
bg_wait || { tail -n 5 "$exp"/log/export_*.log; exit 1; }
cuts=$(recorded "$ali" fbank_dir)/$(recorded "$ali" corpus)_cuts_test.jsonl.gz
python -m asr_kd deploy-table --cuts "$cuts" --feature-cuts "$cuts" --streaming student_onnx --parity student_onnx \
  --systems "ensemble=$d/ensemble:onnx" "baseline=$d/baseline:onnx" "student_pt=$d/student:pt" \
            "student_onnx=$d/student:onnx" "student_int8=$d/student:int8.onnx" \
            "small_baseline=$d/small_baseline:onnx" "small_student=$d/small_student:onnx" \
            "small_student_int8=$d/small_student:int8.onnx" \
  --labels "ensemble=$ens" "baseline=baseline (seed 1)" "student_pt=$stud, PyTorch" "student_onnx=$stud, ONNX" \
           "student_int8=$stud, ONNX int8" "small_baseline=small baseline (hidden $small)" \
           "small_student=small student (hidden $small)" "small_student_int8=small student (hidden $small), int8" \
  --out "$d/deployment_table" --results-md "$exp/kd/RESULTS.md" \
  --title "Deployment: what each system costs to serve (test set, one thread)"
