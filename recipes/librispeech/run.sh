#!/usr/bin/env bash
# LibriSpeech / mini LibriSpeech through the asr_kd speech pipeline. Stage 0 downloads the corpus
# (lhotse) and the official lexicon and LMs (OpenSLR 11); stage 1 prepares lhotse manifests with
# optional speed perturbation and MUSAN noise; stages 2-15 are shared (utils/kd_stages.sh) and
# decode with the official pruned 3-gram when it was downloaded.
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

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --mini true|false     mini LibriSpeech or the full corpus [$mini]
  --train-parts LIST    full corpus training parts [$train_parts]
  --corpus-dir DIR      an existing copy; empty: download with lhotse [$corpus_dir]
  --download-lm true|false  official lexicon + ARPA LMs into \$data/lm [$download_lm]
  --speed-perturb LIST  e.g. \"0.9 1.1\" [$speed_perturb]   --musan-dir DIR [$musan_dir]
  --config FILE  --data DIR  --exp DIR  --nj N  --stage N / --stop-stage N [$stage..$stop_stage]
  --ensemble-size N [$ensemble_size]  --temperature T [$temperature]  --student-seeds N [$student_seeds]
Stages: 0 download, 1 manifests, then 2-13 as in the default recipe (../../run.sh --help)."

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
corpus=librispeech
[ -f "$data/lm/librispeech-lexicon.txt" ] && lang_opts="--dictionary $data/lm/librispeech-lexicon.txt"
[ -f "$data/lm/3-gram.pruned.1e-7.arpa" ] && decode_opts="--arpa $data/lm/3-gram.pruned.1e-7.arpa" &&
  lang_opts="${lang_opts:-} --lm-vocab $data/lm/3-gram.pruned.1e-7.arpa"  # words.txt: training words + the LM's, never dev/test's
. $root/utils/kd_stages.sh
echo "$0: stages $stage..$stop_stage done; tables in $exp/kd/RESULTS.md"
