#!/usr/bin/env bash
# Table (5e), what makes the student keep the gain: students taught in other ways, scored against the
# ensemble on dev, and the per-epoch diagnosis of the recipe's own students.
set -euo pipefail
config=""
temperature=2
lever_seeds=1
help_message="Usage: $0 [options] ALI_DIR ENSEMBLE_DIR SOFT_DIR STUDENT_DIR EXP
Each lever is a set of train-dnn options over the config's student and teaching sections (same ensemble,
temperature and seeds); the first row is STUDENT_DIR, the recipe's own students. Students in EXP/teaching/leverN,
a hard-label control (cosine over 15 epochs) in EXP/teaching/control_cosine15; table EXP/kd/table_5e_teaching
and the diagnosis of STUDENT_DIR's students (KL to the ensemble, agreement, dev accuracy per epoch)
EXP/kd/diagnosis, into EXP/kd/RESULTS.md.
  --config FILE  [$config]   --temperature T [$temperature]   --lever-seeds N  students per lever [$lever_seeds]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 5 $# "ALI_DIR ENSEMBLE_DIR SOFT_DIR STUDENT_DIR EXP"
ali=$1 ensemble=$2 soft=$3 students=$4 exp=$5
stored="--no-online-teacher --augment none"
short="--epochs 5 --select-on dev_acc --halve-below 0 --max-halvings 0"  # the members' own schedule
cosine="--epochs 20 --schedule cosine --select-on dev_kl --halve-below 0 --max-halvings 0"
newbob="--epochs 20 --schedule newbob --select-on dev_kl --halve-below 0.01 --max-halvings 4"
mixup_online="$cosine --online-teacher --augment mixup"
levers=(
  "members' schedule: 5 epochs, stored targets|$short $stored"
  "patient: newbob on dev KL, stored targets|$newbob $stored"
  "patient: cosine over 20 epochs, stored targets|$cosine $stored"
  "student input augmented (SpecAugment), stored targets, 5 epochs|$short --no-online-teacher --augment specaugment"
  "consistent: online ensemble on SpecAugment views, 5 epochs|$short --online-teacher --augment specaugment"
  "consistent: online ensemble on mixup views, 5 epochs|$short --online-teacher --augment mixup"
  "patient + consistent: cosine over 20 epochs, online ensemble on tempo views (0.9, 1.0, 1.1)|$cosine --online-teacher --augment tempo"
  "patient + consistent: cosine over 20 epochs, online ensemble on tempo + mixup views|$cosine --online-teacher --augment tempo+mixup"
  "patient + consistent: cosine over 20 epochs, online ensemble on reverb + noise views (the corpus's degradations)|$cosine --online-teacher --augment reverb+noise"
  "patient + consistent: cosine over 20 epochs, online ensemble on reverb + noise + mixup views|$cosine --online-teacher --augment reverb+noise+mixup"
)
# the paper's sweep on dev, around the recipe's T and hard weight, with the online mixup teacher (any T: no stored targets)
hw=$(hard_weight "$config")
for t in 1 2 4; do
  awk -v a="$t" -v b="$temperature" 'BEGIN { exit !(a + 0 == b + 0) }' && continue  # the recipe's own T is row 1
  levers+=("T=$t, hard weight $hw: cosine over 20 epochs, online ensemble on mixup views|$mixup_online --temperature $t")
done
for w in 0 1; do levers+=("T=$temperature, hard weight $w: cosine over 20 epochs, online ensemble on mixup views|$mixup_online --hard-weight $w"); done

out=$exp/teaching
read_models members "$ensemble"
read_models student_models "$students"
run_dirs=("${student_models[@]%/best.pt}")  # the students' training folders
rows=("default=$(IFS=,; echo "${run_dirs[*]}")") labels=("default=default (stage 7, the config's student and teaching)")
mkdir -p "$out"
i=0
for spec in "${levers[@]}"; do
  name=${spec%%|*} opts=${spec#*|} i=$((i + 1)) runs=()
  for seed in $(seq 101 $((100 + lever_seeds))); do
    # shellcheck disable=SC2086  # opts is a list of options
    bg_job "$out/lever$i.seed$seed.log" python -m asr_kd train-dnn ${config:+--config "$config"} --ali-dir "$ali" --seed "$seed" \
      --soft-targets "$soft" --temperature "$temperature" --teacher-models "$ensemble" --out "$out/lever$i/seed$seed" $opts
    runs+=("$out/lever$i/seed$seed")
  done
  rows+=("lever$i=$(IFS=,; echo "${runs[*]}")") labels+=("lever$i=$name")
done
# the control: does the long schedule alone make a single model as good? hard labels, cosine over 15 epochs
bg_job "$out/control.log" python -m asr_kd train-dnn ${config:+--config "$config"} --ali-dir "$ali" --seed 1 \
  --out "$out/control_cosine15" --epochs 15 --schedule cosine
bg_wait || { tail -n 3 "$out"/lever*.log "$out/control.log"; exit 1; }
rows+=("control=$out/control_cosine15") labels+=("control=control: hard labels, cosine over 15 epochs")
python -m asr_kd teaching-table --rows "${rows[@]}" --labels "${labels[@]}" --teachers "$ensemble" --ali-dir "$ali" \
  --temperature "$temperature" --out "$exp/kd/table_5e_teaching" --results-md "$exp/kd/RESULTS.md" \
  --title "(5e) What makes the student keep the gain (dev, T=$temperature)"
python -m asr_kd diagnose-student --students "${run_dirs[@]}" --teachers "$ensemble" \
  --references "${members[0]}" --ali-dir "$ali" --temperature "$temperature" \
  --title "$(recorded "$ali" corpus), stage 7 students" --out "$exp/kd/diagnosis"
