#!/usr/bin/env bash
# Any corpus through the asr_kd speech pipeline: give Kaldi data directories (wav.scp, text,
# utt2spk, optional segments) or folders of audio files with transcripts for train, dev and
# test; everything after the import is the shared pipeline (utils/kd_stages.sh).
#   recipes/custom/run.sh --train-dir D --dev-dir D --test-dir D [--corpus NAME] [--sample-rate 16000]
#                         [--dictionary lexicon.txt | --units graphemes|bpe]
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")"
root=../..

stage=0
stop_stage=15
nj=2
ddp_procs=1         # data-parallel processes per network (utils/recipe.sh: --ddp-procs)
config=conf/custom.yaml
data=data
exp=exp
corpus=custom
train_dir=""
dev_dir=""
test_dir=""
unlabelled_dir=""     # untranscribed audio (Kaldi dir or audio folder; no text is read) for stage 18
transfer_ratios="1 2 4"  # stage 18: untranscribed frames per labelled frame, one student each
sample_rate=16000
dictionary=""         # Kaldi lexicon.txt; words it lacks get eSpeak G2P (units: phones)
units=""              # phones | graphemes | bpe (overrides the config)
resample=false        # resample other rates instead of failing
allow_pipes=false     # Kaldi data dirs: run wav.scp commands ('cmd |') through the shell
ensemble_size=4
temperature=2
student_seeds=3
sweep_temperatures="1 2 5 10"
small_fraction=0.03
topk_values="5 20"
analysis=false        # true adds the paper's analysis stages 9-12

help_message="Usage: $0 --train-dir D --dev-dir D --test-dir D [options]
Each D is a Kaldi data directory (has wav.scp) or a folder of wav/flac files with transcripts
(<stem>.txt / <stem>.lab beside each file, or a 'text' file of '<stem> <words>' lines).
Options (defaults in brackets):
  --corpus NAME       name in the manifest file names [$corpus]
  --unlabelled-dir D  untranscribed audio (Kaldi dir or audio folder; its text, if any, is never read): the
                      students of stage 18 also learn from the ensemble on it
  --transfer-ratios LIST    stage 18: untranscribed frames per labelled frame, one student each [$transfer_ratios]
  --sample-rate HZ    expected sample rate [$sample_rate]
  --dictionary FILE   pronunciation dictionary; eSpeak G2P fills the gaps
  --units U           phones | graphemes | bpe (no dictionary needed for the last two)
  --resample true|false     resample audio of another rate instead of failing [$resample]
  --allow-pipes true|false  run wav.scp commands ('cmd |'); only for data you trust [$allow_pipes]
  --config FILE       YAML config [$config]   --data DIR / --exp DIR [$data, $exp]
  --stage N / --stop-stage N [$stage..$stop_stage]   --nj N [$nj]
  --ensemble-size N [$ensemble_size]  --temperature T [$temperature]  --student-seeds N [$student_seeds]
  --analysis true|false  also run the paper's analysis stages 9-12 [$analysis]
Stages: 1 import (manifests), then 2-$stop_stage as in the default recipe (see ../../run.sh --help); 16-18 opt-in."

. $root/utils/recipe.sh

train_dir=$(from_caller "$train_dir"); dev_dir=$(from_caller "$dev_dir"); test_dir=$(from_caller "$test_dir")
dictionary=$(from_caller "$dictionary"); unlabelled_dir=$(from_caller "$unlabelled_dir")
for d in "$train_dir" "$dev_dir" "$test_dir"; do
  [ -n "$d" ] && [ -d "$d" ] || { echo "$0: give --train-dir, --dev-dir and --test-dir (folders); see --help" >&2; exit 1; }
done
lang_opts="${dictionary:+--dictionary $dictionary} ${units:+--units $units}"
stage_key=$(stage_key_of "$config" ${dictionary:+"$dictionary"} -- \
             "$train_dir $dev_dir $test_dir $corpus $sample_rate $units $ensemble_size $temperature $student_seeds")

import_split() {  # import_split SPLIT DIR
  local extra=(); $resample && extra=(--resample)
  if [ -f "$2/wav.scp" ]; then
    $allow_pipes && extra+=(--allow-pipes)
    python -m asr_kd import-kaldi-dir --data-dir "$2" --corpus "$corpus" --split "$1" --sample-rate "$sample_rate" \
      --out "$data/manifests" "${extra[@]}"
  else
    python -m asr_kd import-audio-folder --folder "$2" --corpus "$corpus" --split "$1" --sample-rate "$sample_rate" \
      --out "$data/manifests" "${extra[@]}"
  fi
}
import_all() {
  import_split train "$train_dir" && import_split dev "$dev_dir" && import_split test "$test_dir" || return 1
  if [ -n "$unlabelled_dir" ]; then import_split unlabelled "$unlabelled_dir"; fi
}

data_key=$(unlabelled_key)  # stages 1-2 redo (skipping what is complete) when --unlabelled-dir changes
stage_key=$data_key run_stage 1 import import_all
. $root/utils/kd_stages.sh
echo "$0: stages $stage..$stop_stage done; tables in $exp/kd/RESULTS.md"
