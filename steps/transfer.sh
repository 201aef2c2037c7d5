#!/usr/bin/env bash
# Students that also learn from untranscribed transfer audio, scored like table (5e).
set -euo pipefail
config=""
temperature=2
ratios="1 2 4"       # untranscribed frames per labelled frame, one student each
help_message="Usage: $0 [options] ALI_DIR ENSEMBLE_DIR SOFT_DIR STUDENT_DIR EXP
The recipe's student (STUDENT_DIR's recipe: seed 101) on ALI_DIR's labelled frames plus R x as many frames
of the corpus's untranscribed split (its features' <corpus>_cuts_unlabelled.jsonl.gz, made by the corpus
stages: --unlabelled-hours H, or recipes/custom --unlabelled-dir DIR), where the ensemble alone teaches;
one student per R of --ratios in EXP/transfer/ratioR; table EXP/kd/table_5e_transfer, into EXP/kd/RESULTS.md.
  --config FILE  [$config]   --temperature T [$temperature]   --ratios LIST [$ratios]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 5 $# "ALI_DIR ENSEMBLE_DIR SOFT_DIR STUDENT_DIR EXP"
ali=$1 ensemble=$2 soft=$3 students=$4 exp=$5
out=$exp/transfer
fbank=$(recorded "$ali" fbank_dir) corpus=$(recorded "$ali" corpus)
[ -f "$fbank/${corpus}_cuts_unlabelled.jsonl.gz" ] || {
  echo "$0: no untranscribed split in $fbank: rerun the corpus and feature stages with --unlabelled-hours H (or --unlabelled-dir DIR)" >&2
  exit 1
}
read_models student_models "$students"
run_dirs=("${student_models[@]%/best.pt}")
rows=("labelled=$(IFS=,; echo "${run_dirs[*]}")") labels=("labelled=labelled only (stage 7)")
mkdir -p "$out"
for r in $ratios; do
  bg_job "$out/ratio$r.log" python -m asr_kd train-dnn ${config:+--config "$config"} --ali-dir "$ali" --seed 101 --soft-targets "$soft" \
    --temperature "$temperature" --teacher-models "$ensemble" --unlabelled-ratio "$r" --out "$out/ratio$r/seed101"
  rows+=("ratio$r=$out/ratio$r/seed101") labels+=("ratio$r=+ ${r}x untranscribed audio")
done
bg_wait || { tail -n 3 "$out"/ratio*.log; exit 1; }
python -m asr_kd teaching-table --rows "${rows[@]}" --labels "${labels[@]}" --teachers "$ensemble" --ali-dir "$ali" \
  --temperature "$temperature" --out "$exp/kd/table_5e_transfer" --results-md "$exp/kd/RESULTS.md" \
  --title "(5e) Untranscribed transfer audio: students on labelled + R x untranscribed frames (dev, T=$temperature)"
