#!/usr/bin/env bash
# DNN acoustic models on an alignment's labels, one per seed: the ensemble (each member is also a baseline).
set -euo pipefail
config=""
members=4
ddp_procs=1
help_message="Usage: $0 [options] ALI_DIR OUT_DIR
Trains OUT_DIR/seed1 .. seedN (N = --members; hard labels, the config's train section), at most --nj
processes at once (logs OUT_DIR/log/seedN.log), and lists them in OUT_DIR/models.txt, the folder that
--teachers and --baselines take.
  --config FILE     YAML config [$config]
  --members N       ensemble members; they differ only in their seed [$members]
  --ddp-procs N     data-parallel processes per member (torchrun; srun tasks under --cmd slurm) [$ddp_procs]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 2 $# "ALI_DIR OUT_DIR"
ali=$1 out=$2
mkdir -p "$out/log"
trained=()
for seed in $(seq 1 "$members"); do
  ddp_job "$out/log/seed$seed.log" train-dnn ${config:+--config "$config"} --ali-dir "$ali" --seed "$seed" --out "$out/seed$seed"
  trained+=("$out/seed$seed/best.pt")
done
bg_wait || { tail -n 5 "$out"/log/seed*.log; exit 1; }
grep -H "best dev frame accuracy" "$out"/log/seed*.log
write_models "$out" "${trained[@]}"
