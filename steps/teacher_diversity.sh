#!/usr/bin/env bash
# Table (5e), teacher quality and diversity: students of ensembles twice as large, and of ensembles that mix
# architectures (dnn + tdnn), against the recipe's own ensemble and students.
set -euo pipefail
config=""
temperature=2
tdnn_hidden=256      # tdnn units per layer when tdnn is the other architecture: at 512 a tdnn costs ~20 dnn on CPU
help_message="Usage: $0 [options] ALI_DIR ENSEMBLE_DIR STUDENT_DIR EXP
ENSEMBLE_DIR's N members (the config's model.name, seeds 1..N) are joined by N more of the same (seeds N+1..2N,
EXP/teachers/same) and N of the other architecture (dnn <-> tdnn; seeds 1..N, EXP/teachers/other: a tdnn takes
model.tdnn_layers and --tdnn-hidden units), all trained on hard labels like the members. Three more ensembles
(2N members; N/2 + N/2 of the other; N + N of the other) each teach one student (seed 101, the config's student and
teaching sections) in EXP/teachers/{more,mixed_half,mixed}/student. Table EXP/kd/table_5e_teachers (dev, each student
against its own ensemble), into EXP/kd/RESULTS.md; its first row is ENSEMBLE_DIR with STUDENT_DIR's students.
A rerun resumes the trainings (finished ones are kept).
  --config FILE  [$config]   --temperature T [$temperature]   --tdnn-hidden N [$tdnn_hidden]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 4 $# "ALI_DIR ENSEMBLE_DIR STUDENT_DIR EXP"
ali=$1 ensemble=$2 students=$3 exp=$4
out=$exp/teachers
read_models members "$ensemble"
read_models student_models "$students"
n=${#members[@]} half=$(( ${#members[@]} / 2 ))
[ "$half" -ge 1 ] || { echo "$0: $ensemble has one member; teacher diversity needs at least two" >&2; exit 1; }
arch=$(python -c 'import sys; from asr_kd.utils.config import section; from asr_kd.nnet.models import ModelConfig
print(section(sys.argv[1] or None, "model", ModelConfig).name)' "$config")
if [ "$arch" = tdnn ]; then other=dnn other_opts=(--model dnn); else other=tdnn other_opts=(--model tdnn --hidden "$tdnn_hidden"); fi
mkdir -p "$out/log"
train() {  # train NAME SEED OPTIONS...: one hard-label member in $out/NAME/seedSEED (a rerun resumes it)
  local name=$1 seed=$2; shift 2
  bg_job "$out/log/$name.seed$seed.log" python -m asr_kd train-dnn ${config:+--config "$config"} --ali-dir "$ali" \
    --seed "$seed" --out "$out/$name/seed$seed" "$@"
}
same=() others=()
for i in $(seq 1 "$n"); do
  train same $((n + i)); same+=("$out/same/seed$((n + i))/best.pt")
  train other "$i" "${other_opts[@]}"; others+=("$out/other/seed$i/best.pt")
done
bg_wait || { tail -n 3 "$out"/log/*.log; exit 1; }
ensembles=(
  "more|$((2 * n)) $arch (seeds 1-$((2 * n)))|${members[*]} ${same[*]}"
  "mixed_half|$half $arch + $half $other|${members[*]:0:half} ${others[*]:0:half}"
  "mixed|$n $arch + $n $other|${members[*]} ${others[*]}"
)  # NAME|LABEL|CHECKPOINTS: each ensemble's members are listed on its student's command line, not in a folder
rows=("recipe=$ensemble=$(IFS=,; echo "${student_models[*]%/best.pt}")") labels=("recipe=$n $arch (the recipe's)")
for spec in "${ensembles[@]}"; do
  IFS='|' read -r name label paths <<< "$spec"
  # shellcheck disable=SC2086  # paths is a list of checkpoints
  bg_job "$out/log/$name.student.log" python -m asr_kd train-dnn ${config:+--config "$config"} --ali-dir "$ali" \
    --seed 101 --teachers $paths --temperature "$temperature" --out "$out/$name/student"
  rows+=("$name=${paths// /+}=$out/$name/student") labels+=("$name=$label")
done
bg_wait || { tail -n 3 "$out"/log/*.student.log; exit 1; }
python -m asr_kd teacher-table --rows "${rows[@]}" --labels "${labels[@]}" --ali-dir "$ali" --temperature "$temperature" \
  --out "$exp/kd/table_5e_teachers" --results-md "$exp/kd/RESULTS.md" \
  --title "(5e) Teacher quality and diversity: students of larger and mixed-architecture ensembles (dev, T=$temperature)"
