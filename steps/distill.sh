#!/usr/bin/env bash
# Distilled students: taught by an ensemble (its soft targets, and online when the config says so).
set -euo pipefail
config=""
seeds=1             # students, seeds 101, 102, ...
temperature=2
ddp_procs=1
train_opts=""       # further train-dnn options, e.g. "--epochs 5 --augment none" or "--hidden 64"
help_message="Usage: $0 [options] ALI_DIR ENSEMBLE_DIR SOFT_DIR OUT_DIR
Trains OUT_DIR/seed101 .. (--seeds students) on ALI_DIR's frames, taught by the ensemble in ENSEMBLE_DIR
through its soft targets SOFT_DIR (python -m asr_kd soft-targets), logs OUT_DIR/log/seedN.log, and lists
them in OUT_DIR/models.txt. Students start in waves of --nj / --ddp-procs; a last wave of fewer shares
every core (--threads).
  --config FILE       YAML config (model, train, student, distill and teaching sections) [$config]
  --seeds N           students [$seeds]
  --temperature T     soft-target temperature [$temperature]
  --ddp-procs N       data-parallel processes per student [$ddp_procs]
  --train-opts OPTS   further train-dnn options [$train_opts]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 4 $# "ALI_DIR ENSEMBLE_DIR SOFT_DIR OUT_DIR"
ali=$1 ensemble=$2 soft=$3 out=$4
mkdir -p "$out/log"
slots=$(( nj / ddp_procs > 1 ? nj / ddp_procs : 1 ))  # students training at once
i=0 trained=()
for seed in $(seq 101 $((100 + seeds))); do
  wave=$(( seeds - i / slots * slots < slots ? seeds - i / slots * slots : slots ))
  threads=$(( nj / (wave * ddp_procs) > 1 ? nj / (wave * ddp_procs) : 1 ))
  # shellcheck disable=SC2086  # train_opts is a list of options
  ddp_job "$out/log/seed$seed.log" train-dnn ${config:+--config "$config"} --ali-dir "$ali" --seed "$seed" --threads "$threads" \
    --soft-targets "$soft" --teacher-models "$ensemble" --out "$out/seed$seed" --temperature "$temperature" $train_opts
  trained+=("$out/seed$seed/best.pt")
  i=$((i + 1))
done
bg_wait || { tail -n 5 "$out"/log/seed*.log; exit 1; }
grep -H "best dev frame accuracy" "$out"/log/seed*.log
write_models "$out" "${trained[@]}"
