#!/usr/bin/env bash
# Any corpus through the asr_kd speech pipeline: give Kaldi data directories (wav.scp, text,
# utt2spk, optional segments) or folders of audio files with transcripts for train, dev and
# test; after the import, the speech stages of the default recipe (../../run.sh), each through steps/.
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
deploy_table=false    # true: stage 15 also trains quarter-width networks, exports every system, the deployment table
k2_members=1          # stage 14: k2 vs. Kaldi on this many seeds of each system (all: every seed)

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
  --deploy-table true|false   stage 15: also quarter-width networks, every system exported, the deployment table [$deploy_table]
  --k2-members N      stage 14: k2 and Kaldi's decoder on the first N seeds of each system, or all [$k2_members]
Stages: 1 import (manifests), then 2-$stop_stage as in the default recipe (see ../../run.sh --help); 17-19 opt-in."

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
ali=$exp/mono T=$temperature steps=$root/steps
common=(--config "$config" --nj "$nj")
search=(--manifest-dir "$data/manifests" --lmwt 1,2,3,5,8,13 --wip 0,1)  # the dev grid widens past an edge
pipes=(); $allow_pipes && pipes=(--allow-pipes)
stage_key=$data_key run_stage 2 features python -m asr_kd compute-fbank "${common[@]}" --sample-rate "$sample_rate" \
                           ${pipes[@]+"${pipes[@]}"} --corpus "$corpus" --manifest-dir "$data/manifests" --out "$data/fbank"
# shellcheck disable=SC2086  # lang_opts is a list of options
run_stage 3 lang         python -m asr_kd prepare-lang --config "$config" --corpus "$corpus" --manifest-dir "$data/manifests" \
                           $lang_opts --dict-dir "$data/local/dict" --out "$data/lang"
run_stage 4 align        $steps/train_gmms.sh "${common[@]}" "$data/fbank" "$data/lang" "$exp"
run_stage 5 ensemble     $steps/train_ensemble.sh "${common[@]}" --ddp-procs "$ddp_procs" --members "$ensemble_size" \
                           "$ali" "$exp/dnn"
run_stage 6 soft-targets python -m asr_kd soft-targets --teachers "$exp/dnn" --ali-dir "$ali" --nj "$nj" \
                           --temperature "$T" --out "$exp/soft_T$T"
run_stage 7 distill      $steps/distill.sh "${common[@]}" --ddp-procs "$ddp_procs" --seeds "$student_seeds" \
                           --temperature "$T" "$ali" "$exp/dnn" "$exp/soft_T$T" "$exp/student_T$T"
run_stage 8 results      python -m asr_kd speech-table --config "$config" --ali-dir "$ali" --baselines "$exp/dnn" \
                           --students "$exp/student_T$T" --out "$exp/kd/table_5a" --results-md "$exp/kd/RESULTS.md" \
                           --title "(5a) Baseline vs. $ensemble_size-model ensemble vs. distilled student (T=$T)"
if $analysis; then
  run_stage 9 t-sweep    $steps/temperature_sweep.sh "${common[@]}" --temperatures "$sweep_temperatures" --reference "$T" \
                           "$ali" "$exp/dnn" "$exp"
  run_stage 10 small-data $steps/small_data.sh "${common[@]}" --fraction "$small_fraction" --temperature "$T" \
                           "$ali" "$exp/dnn" "$exp/soft_T$T" "$exp"
  run_stage 11 topk      $steps/topk.sh "${common[@]}" --temperature "$T" --topk-values "$topk_values" "$ali" "$exp/dnn" "$exp"
  run_stage 12 realign   $steps/realign.sh "${common[@]}" "${search[@]}" "$ali" "$exp/dnn" "$data/lang" "$exp"
fi
run_stage 13 decode      $steps/decode_systems.sh "${common[@]}" "${search[@]}" --temperature "$T" \
                           "$ali" "$exp/dnn" "$exp/student_T$T" "$exp/decode"
run_stage 14 k2-decode   $steps/k2_decode.sh --members "$k2_members" "$exp/decode" "$exp/decode_k2"
if $deploy_table; then
  run_stage 15 deploy    $steps/deploy_table.sh "${common[@]}" "${search[@]}" --temperature "$T" \
                           "$ali" "$exp/dnn" "$exp/soft_T$T" "$exp/student_T$T" "$exp/decode" "$exp/deploy"
else
  run_stage 15 deploy    $steps/export_student.sh --config "$config" --manifest-dir "$data/manifests" --temperature "$T" \
                           "$exp/student_T$T" "$exp/decode" "$exp/deploy"
fi
run_stage 17 teaching    $steps/teaching_levers.sh "${common[@]}" --temperature "$T" \
                           "$ali" "$exp/dnn" "$exp/soft_T$T" "$exp/student_T$T" "$exp"
stage_key="$stage_key $transfer_ratios" \
run_stage 18 transfer    $steps/transfer.sh "${common[@]}" --temperature "$T" --ratios "$transfer_ratios" \
                           "$ali" "$exp/dnn" "$exp/soft_T$T" "$exp/student_T$T" "$exp"
run_stage 19 teachers    $steps/teacher_diversity.sh "${common[@]}" --temperature "$T" \
                           "$ali" "$exp/dnn" "$exp/student_T$T" "$exp"
results_footer "$exp/kd/RESULTS.md" --example "$exp/kd/transcribe_example.txt"
echo "$0: stages $stage..$stop_stage done; tables in $exp/kd/RESULTS.md"
