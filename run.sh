#!/usr/bin/env bash
# The default asr_kd recipe: Hinton-style distillation of a hybrid DNN-HMM acoustic model
# on the embedded digit-string corpus (synthesised offline with eSpeak NG).
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=8        # the last stage that is implemented today; later ones say they are pending
nj=2                # parallel processes
config=conf/default.yaml
data=data           # corpus, manifests, features
exp=exp             # models, logs (exp/log), completion markers (exp/done)
ensemble_size=4     # ensemble members (the paper used 10); they differ only in their seed
temperature=2       # soft-target temperature for the distilled student

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --stage N          first stage to run [$stage]
  --stop-stage N     last stage to run [$stop_stage]
  --nj N             parallel jobs [$nj]
  --config FILE      YAML config [$config]
  --data DIR         data folder [$data]
  --exp DIR          experiment folder [$exp]
  --ensemble-size N  DNN ensemble members [$ensemble_size]
  --temperature T    soft-target temperature [$temperature]
Stages:
  0  corpus       synthesise the digit-string corpus (local/make_corpus.sh)
  1  manifests    lhotse recordings/supervisions/cuts per split (local/prepare_manifests.sh)
  2  features     log-mel fbank with lhotse + CMVN statistics
  3  lang         lexicon (eSpeak G2P), phones, L.fst, HMM topology (data/lang)
  4  align        monophone GMM-HMM from a flat start; pdf/phone labels for every split
                  stored with lhotse, pdf counts, report vs. eSpeak's oracle (exp/mono)
  5  ensemble     DNN acoustic models, one per seed, --nj at a time (exp/dnn/seedN)
  6  soft-targets ensemble posteriors at temperature T, stored with lhotse (exp/soft_T)
  7  distill      the distilled student (exp/student_T)
  8  results      test frame accuracy: baseline / ensemble / student -> exp/kd, RESULTS.md
  9  decode       HCLG, hybrid decoding and WER                       (pending: issue #5)
A finished stage is skipped on rerun (marker in \$exp/done, log in \$exp/log)."

. ./path.sh
. utils/parse_options.sh
. utils/stages.sh

[ -f "$config" ] || { echo "$0: config $config not found" >&2; exit 1; }
stage_key=$( { cat "$config"; echo "ensemble_size=$ensemble_size temperature=$temperature"; } | sha256sum | cut -c1-16)

run_stage 0 corpus    local/make_corpus.sh --config "$config" --nj "$nj" "$data/corpus"
run_stage 1 manifests local/prepare_manifests.sh --config "$config" "$data/corpus" "$data/manifests"
run_stage 2 features  python -m asr_kd compute-fbank --config "$config" --nj "$nj" \
                        --manifest-dir "$data/manifests" --out "$data/fbank" --corpus digits
run_stage 3 lang      python -m asr_kd prepare-lang --config "$config" --manifest-dir "$data/manifests" \
                        --corpus digits --dict-dir "$data/local/dict" --out "$data/lang"
run_stage 4 align     python -m asr_kd train-mono --config "$config" --nj "$nj" --fbank-dir "$data/fbank" \
                        --corpus digits --lang "$data/lang" --exp "$exp/mono"
dnn_args=(--config "$config" --ali-dir "$exp/mono" --fbank-dir "$data/fbank" --corpus digits)

train_ensemble() {  # members run as separate processes, at most $nj at a time
  local seed pids=()
  for seed in $(seq 1 "$ensemble_size"); do
    python -m asr_kd train-dnn "${dnn_args[@]}" --seed "$seed" --out "$exp/dnn/seed$seed" \
      > "$exp/log/dnn_seed$seed.log" 2>&1 &
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$nj" ]; do sleep 1; done
  done
  local failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  tail -n 2 "$exp"/log/dnn_seed*.log
  return $failed
}
members() { for seed in $(seq 1 "$ensemble_size"); do echo "$exp/dnn/seed$seed/best.pt"; done; }

run_stage 5 ensemble     train_ensemble
run_stage 6 soft-targets python -m asr_kd soft-targets --teachers $(members) --temperature "$temperature" \
                           --ali-dir "$exp/mono" --fbank-dir "$data/fbank" --corpus digits --out "$exp/soft_T$temperature"
run_stage 7 distill      python -m asr_kd train-dnn "${dnn_args[@]}" --seed 101 --temperature "$temperature" \
                           --soft-targets "$exp/soft_T$temperature" --out "$exp/student_T$temperature" --threads "$nj"
run_stage 8 results      python -m asr_kd speech-table --baselines $(members) --students "$exp/student_T$temperature/best.pt" \
                           --ali-dir "$exp/mono" --fbank-dir "$data/fbank" --corpus digits --out "$exp/kd/table_5a" \
                           --results-md "$exp/kd/RESULTS.md" \
                           --title "Speech, digits corpus: baseline vs. $ensemble_size-model ensemble vs. student (T=$temperature)"
pending_stage 9 decode 5
echo "$0: stages $stage..$stop_stage done"
