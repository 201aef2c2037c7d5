#!/usr/bin/env bash
# TIMIT phone recognition with the asr_kd pipeline: lhotse's TIMIT preparation (48 phones, Kaldi's
# dev and core test speakers), a phone-as-word lexicon and phone bigram, and PER after folding to
# 39 phones. TIMIT is licensed by the LDC: give your copy with --corpus-dir.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")"
root=../..

stage=1
stop_stage=15
nj=2
ddp_procs=1         # data-parallel processes per network (utils/recipe.sh: --ddp-procs)
config=conf/timit.yaml
data=data
exp=exp
corpus_dir=""        # the TIMIT folder that holds data/TRAIN and data/TEST
ensemble_size=4
temperature=2
student_seeds=3
sweep_temperatures="1 2 5 10"
small_fraction=0.03
topk_values="5 20"

help_message="Usage: $0 --corpus-dir DIR [options]
Options (defaults in brackets):
  --corpus-dir DIR   TIMIT (data/TRAIN, data/TEST)
  --config FILE [$config]  --data DIR [$data]  --exp DIR [$exp]  --nj N [$nj]  --stage N / --stop-stage N [$stage..$stop_stage]
  --ensemble-size N [$ensemble_size]  --temperature T [$temperature]  --student-seeds N [$student_seeds]
Stages: 1 manifests (+ phone lexicon and the 48->39 map), then 2-13 as in the default recipe; the
decode stage reports PER on 39 phones."

. $root/utils/recipe.sh

[ -n "$corpus_dir" ] || { echo "$0: give --corpus-dir (TIMIT is not downloadable)" >&2; exit 1; }
corpus_dir=$(from_caller "$corpus_dir")
stage_key=$(stage_key_of "$config" -- "$corpus_dir $ensemble_size $temperature $student_seeds")

run_stage 1 manifests python -m asr_kd prepare-timit --corpus-dir "$corpus_dir" --out "$data/manifests" --nj "$nj"
corpus=timit
lang_opts="--dictionary $data/manifests/timit_phone_lexicon.txt"
decode_opts="--score-map $data/manifests/timit_48_to_39.txt"
decode_title="PER (39 phones): baseline vs. ensemble vs. distilled student (hybrid decoding, phone bigram)"
. $root/utils/kd_stages.sh
echo "$0: stages $stage..$stop_stage done; tables in $exp/kd/RESULTS.md"
