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
analysis=false        # the paper's analysis stages 9-12
deploy_table=false    # stage 15: also quarter-width networks, every system exported, the deployment table
k2_members=1          # stage 14: k2 vs. Kaldi on this many seeds of each system (all: every seed)

help_message="Usage: $0 --corpus-dir DIR [options]
Options (defaults in brackets):
  --corpus-dir DIR   TIMIT (data/TRAIN, data/TEST)
  --config FILE [$config]  --data DIR [$data]  --exp DIR [$exp]  --nj N [$nj]  --stage N / --stop-stage N [$stage..$stop_stage]
  --ensemble-size N [$ensemble_size]  --temperature T [$temperature]  --student-seeds N [$student_seeds]
  --analysis true|false  --deploy-table true|false  --k2-members N|all   as in ../../run.sh [$analysis, $deploy_table, $k2_members]
Stages: 1 manifests (+ phone lexicon and the 48->39 map), then 2-15 as in the default recipe (9-12 with
--analysis); the decode stage reports PER on 39 phones."

. $root/utils/recipe.sh

[ -n "$corpus_dir" ] || { echo "$0: give --corpus-dir (TIMIT is not downloadable)" >&2; exit 1; }
corpus_dir=$(from_caller "$corpus_dir")
stage_key=$(stage_key_of "$config" -- "$corpus_dir $ensemble_size $temperature $student_seeds")

run_stage 1 manifests python -m asr_kd prepare-timit --corpus-dir "$corpus_dir" --out "$data/manifests" --nj "$nj"
ali=$exp/mono T=$temperature steps=$root/steps
common=(--config "$config" --nj "$nj")
search=(--manifest-dir "$data/manifests" --lmwt 1,2,3,5,8,13 --wip 0,1
        --decode-opts "--score-map $data/manifests/timit_48_to_39.txt")  # PER after folding 48 phones to 39
run_stage 2 features     python -m asr_kd compute-fbank "${common[@]}" --manifest-dir "$data/manifests" --out "$data/fbank"
run_stage 3 lang         python -m asr_kd prepare-lang --config "$config" --manifest-dir "$data/manifests" \
                           --dictionary "$data/manifests/timit_phone_lexicon.txt" --dict-dir "$data/local/dict" --out "$data/lang"
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
                           --title "PER (39 phones): baseline vs. ensemble vs. distilled student (hybrid decoding, phone bigram)" \
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
run_stage 19 teachers    $steps/teacher_diversity.sh "${common[@]}" --temperature "$T" \
                           "$ali" "$exp/dnn" "$exp/student_T$T" "$exp"
results_footer "$exp/kd/RESULTS.md" --example "$exp/kd/transcribe_example.txt"
echo "$0: stages $stage..$stop_stage done; tables in $exp/kd/RESULTS.md"
