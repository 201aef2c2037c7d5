#!/usr/bin/env bash
# LibriSpeech / mini LibriSpeech through the asr_kd speech pipeline. Stage 0 downloads the corpus
# (lhotse) and the official lexicon and LMs (OpenSLR 11); stage 1 prepares lhotse manifests with
# optional speed perturbation and MUSAN noise; stages 2-15 are the default recipe's (../../run.sh, each
# through steps/) and decode with the official pruned 3-gram when it was downloaded.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")"
root=../..

stage=0
stop_stage=15
nj=4
ddp_procs=1         # data-parallel processes per network (utils/recipe.sh: --ddp-procs)
mini=true             # true: train-clean-5 / dev-clean-2; false: train-parts / dev-clean / test-clean
train_parts="train-clean-100"
config=""             # default: conf/mini.yaml or conf/full.yaml
data=data
exp=exp
corpus_dir=""         # an existing copy (holding LibriSpeech/); empty: download into $data/download
download_lm=true      # fetch librispeech-lexicon.txt and the 3-gram/4-gram ARPA files
speed_perturb=""      # e.g. "0.9 1.1": extra training copies (labels are recomputed by alignment)
musan_dir=""          # a MUSAN copy: extra training copies mixed with its noise
ensemble_size=4
temperature=2
student_seeds=3
sweep_temperatures="1 2 5 10"
small_fraction=0.03
topk_values="5 20"
analysis=false        # the paper's analysis stages 9-12
deploy_table=false    # stage 15: also quarter-width networks, every system exported, the deployment table
k2_members=1          # stage 14: k2 vs. Kaldi on this many seeds of each system (all: every seed)

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --mini true|false     mini LibriSpeech or the full corpus [$mini]
  --train-parts LIST    full corpus training parts [$train_parts]
  --corpus-dir DIR      an existing copy; empty: download with lhotse [$corpus_dir]
  --download-lm true|false  official lexicon + ARPA LMs into \$data/lm [$download_lm]
  --speed-perturb LIST  e.g. \"0.9 1.1\" [$speed_perturb]   --musan-dir DIR [$musan_dir]
  --config FILE  --data DIR  --exp DIR  --nj N  --stage N / --stop-stage N [$stage..$stop_stage]
  --ensemble-size N [$ensemble_size]  --temperature T [$temperature]  --student-seeds N [$student_seeds]
  --analysis true|false  --deploy-table true|false  --k2-members N|all   as in ../../run.sh [$analysis, $deploy_table, $k2_members]
Stages: 0 download, 1 manifests, then 2-15 as in the default recipe (../../run.sh --help); 9-12 with --analysis."

. $root/utils/recipe.sh

corpus_dir=$(from_caller "$corpus_dir"); musan_dir=$(from_caller "$musan_dir")
if [ -z "$config" ]; then $mini && config=conf/mini.yaml || config=conf/full.yaml; fi
[ -f "$config" ] || { echo "$0: config $config not found" >&2; exit 1; }
stage_key=$(stage_key_of "$config" -- "$mini $train_parts $corpus_dir $speed_perturb $musan_dir $ensemble_size $temperature $student_seeds")

download() {
  if $download_lm; then python -m asr_kd prepare-librispeech --download-lm "$data/lm" --out "$data/manifests"; fi
  if [ -z "$corpus_dir" ]; then
    python -c "from asr_kd.data.librispeech import download_librispeech as d; d('$data/download', $( $mini && echo True || echo False ), '$train_parts'.split())"
  fi
}
manifests() {
  python -m asr_kd prepare-librispeech --corpus-dir "${corpus_dir:-$data/download}" --out "$data/manifests" \
    --mini "$mini" --train-parts $train_parts --nj "$nj" --speed-perturb $speed_perturb ${musan_dir:+--musan-dir "$musan_dir"}
}

run_stage 0 download  download
run_stage 1 manifests manifests
ali=$exp/mono T=$temperature steps=$root/steps
common=(--config "$config" --nj "$nj")
search=(--manifest-dir "$data/manifests" --lmwt 1,2,3,5,8,13 --wip 0,1)
lang_opts=()
if [ -f "$data/lm/librispeech-lexicon.txt" ]; then lang_opts+=(--dictionary "$data/lm/librispeech-lexicon.txt"); fi
if [ -f "$data/lm/3-gram.pruned.1e-7.arpa" ]; then  # the official pruned 3-gram decodes; words.txt: training words + its
  search+=(--decode-opts "--arpa $data/lm/3-gram.pruned.1e-7.arpa")
  lang_opts+=(--lm-vocab "$data/lm/3-gram.pruned.1e-7.arpa")
fi
run_stage 2 features     python -m asr_kd compute-fbank "${common[@]}" --manifest-dir "$data/manifests" --out "$data/fbank"
run_stage 3 lang         python -m asr_kd prepare-lang --config "$config" --manifest-dir "$data/manifests" \
                           ${lang_opts[@]+"${lang_opts[@]}"} --dict-dir "$data/local/dict" --out "$data/lang"
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
run_stage 19 teachers    $steps/teacher_diversity.sh "${common[@]}" --temperature "$T" \
                           "$ali" "$exp/dnn" "$exp/student_T$T" "$exp"
results_footer "$exp/kd/RESULTS.md" --example "$exp/kd/transcribe_example.txt"
echo "$0: stages $stage..$stop_stage done; tables in $exp/kd/RESULTS.md"
