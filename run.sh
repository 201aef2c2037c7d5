#!/usr/bin/env bash
# The default asr_kd recipe: Hinton-style distillation of a hybrid DNN-HMM acoustic model
# on the embedded digit-string corpus (synthesised offline with eSpeak NG).
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=4        # the last stage that is implemented today; later ones say they are pending
nj=2                # parallel processes
config=conf/default.yaml
data=data           # corpus, manifests, features
exp=exp             # models, logs (exp/log), completion markers (exp/done)

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --stage N          first stage to run [$stage]
  --stop-stage N     last stage to run [$stop_stage]
  --nj N             parallel jobs [$nj]
  --config FILE      YAML config [$config]
  --data DIR         data folder [$data]
  --exp DIR          experiment folder [$exp]
Stages:
  0  corpus       synthesise the digit-string corpus (local/make_corpus.sh)
  1  manifests    lhotse recordings/supervisions/cuts per split (local/prepare_manifests.sh)
  2  features     log-mel fbank with lhotse + CMVN statistics
  3  lang         lexicon (eSpeak G2P), phones, L.fst, HMM topology (data/lang)
  4  align        monophone GMM-HMM from a flat start; pdf/phone labels for every split
                  stored with lhotse, pdf counts, report vs. eSpeak's oracle (exp/mono)
  5  ensemble     DNN acoustic-model ensemble                         (pending: issue #4)
  6  soft-targets ensemble posteriors at temperature T                (pending: issue #4)
  7  distill      distilled student                                   (pending: issue #4)
  8  decode       HCLG, hybrid decoding and WER                       (pending: issue #5)
A finished stage is skipped on rerun (marker in \$exp/done, log in \$exp/log)."

. ./path.sh
. utils/parse_options.sh
. utils/stages.sh

[ -f "$config" ] || { echo "$0: config $config not found" >&2; exit 1; }
stage_key=$(sha256sum "$config" | cut -c1-16)

run_stage 0 corpus    local/make_corpus.sh --config "$config" --nj "$nj" "$data/corpus"
run_stage 1 manifests local/prepare_manifests.sh --config "$config" "$data/corpus" "$data/manifests"
run_stage 2 features  python -m asr_kd compute-fbank --config "$config" --nj "$nj" \
                        --manifest-dir "$data/manifests" --out "$data/fbank" --corpus digits
run_stage 3 lang      python -m asr_kd prepare-lang --config "$config" --manifest-dir "$data/manifests" \
                        --corpus digits --dict-dir "$data/local/dict" --out "$data/lang"
run_stage 4 align     python -m asr_kd train-mono --config "$config" --nj "$nj" --fbank-dir "$data/fbank" \
                        --corpus digits --lang "$data/lang" --exp "$exp/mono"
pending_stage 5 ensemble 4
pending_stage 6 soft-targets 4
pending_stage 7 distill 4
pending_stage 8 decode 5
echo "$0: stages $stage..$stop_stage done"
