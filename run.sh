#!/usr/bin/env bash
# The default asr_kd recipe: Hinton-style distillation of a hybrid DNN-HMM acoustic model
# on the embedded digit-string corpus (synthesised offline with eSpeak NG).
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=13       # the last stage that is implemented today; later ones say they are pending
nj=2                # parallel processes
config=conf/default.yaml
data=data           # corpus, manifests, features
exp=exp             # models, logs (exp/log), completion markers (exp/done)
ensemble_size=4     # ensemble members (the paper used 10); they differ only in their seed
temperature=2       # soft-target temperature for the distilled student
student_seeds=3     # distilled students (mean and std over seeds)
sweep_temperatures="1 2 5 10"
small_fraction=0.03 # the paper's "3% of the training data" experiment
topk_values="5 20"  # top-k soft targets compared with dense ones

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
  --student-seeds N  distilled students [$student_seeds]
  --sweep-temperatures LIST   temperatures for stage 9 [$sweep_temperatures]
  --small-fraction F training fraction for stage 10 [$small_fraction]
  --topk-values LIST          top-k sizes for stage 11 [$topk_values]
Stages:
  0  corpus       synthesise the digit-string corpus (local/make_corpus.sh)
  1  manifests    lhotse recordings/supervisions/cuts per split (local/prepare_manifests.sh)
  2  features     log-mel fbank with lhotse + CMVN statistics
  3  lang         lexicon (eSpeak G2P), phones, L.fst, HMM topology (data/lang)
  4  align        monophone GMM-HMM from a flat start; pdf/phone labels for every split
                  stored with lhotse, pdf counts, report vs. eSpeak's oracle (exp/mono)
  5  ensemble     DNN acoustic models, one per seed, --nj at a time (exp/dnn/seedN)
  6  soft-targets ensemble posteriors at temperature T, stored with lhotse (exp/soft_T)
  7  distill      distilled students at --temperature, --student-seeds seeds (exp/student_T/seedN)
  8  results      (5a) test frame accuracy: baseline / ensemble / student -> exp/kd, RESULTS.md
  9  t-sweep      (5b) students at each of --sweep-temperatures
  10 small-data   (5c) --small-fraction of the data: hard labels vs. soft targets of the full ensemble
  11 topk         (5d) top-k vs. dense soft targets: accuracy and storage
  12 realign      realign every split with the ensemble (exp/dnn_ali); a DNN trained on it vs.
                  one trained on the GMM alignment, both scored against eSpeak's oracle phones
  13 decode       bigram LM, HCLG, hybrid decoding of dev and test; LM weight and insertion
                  penalty tuned on dev; WER of GMM / baseline / ensemble / student (exp/decode)
  14 k2-decode    the same graph decoded with k2                      (pending: issue #6)
A finished stage is skipped on rerun (marker in \$exp/done, log in \$exp/log)."

. ./path.sh
. utils/parse_options.sh
. utils/stages.sh

[ -f "$config" ] || { echo "$0: config $config not found" >&2; exit 1; }
stage_key=$( { cat "$config"; echo "$ensemble_size $temperature $student_seeds $sweep_temperatures $small_fraction $topk_values"; } | sha256sum | cut -c1-16)

run_stage 0 corpus    local/make_corpus.sh --config "$config" --nj "$nj" "$data/corpus"
run_stage 1 manifests local/prepare_manifests.sh --config "$config" "$data/corpus" "$data/manifests"
run_stage 2 features  python -m asr_kd compute-fbank --config "$config" --nj "$nj" \
                        --manifest-dir "$data/manifests" --out "$data/fbank" --corpus digits
run_stage 3 lang      python -m asr_kd prepare-lang --config "$config" --manifest-dir "$data/manifests" \
                        --corpus digits --dict-dir "$data/local/dict" --out "$data/lang"
run_stage 4 align     python -m asr_kd train-mono --config "$config" --nj "$nj" --fbank-dir "$data/fbank" \
                        --corpus digits --lang "$data/lang" --exp "$exp/mono"
dnn_args=(--config "$config" --ali-dir "$exp/mono" --fbank-dir "$data/fbank" --corpus digits)

members() { for seed in $(seq 1 "$ensemble_size"); do echo "$exp/dnn/seed$seed/best.pt"; done; }
soft_args=(--teachers $(members) --ali-dir "$exp/mono" --fbank-dir "$data/fbank" --corpus digits)
table_args=(--ali-dir "$exp/mono" --fbank-dir "$data/fbank" --corpus digits --results-md "$exp/kd/RESULTS.md")

train_ensemble() {  # members are separate processes, at most $nj at a time
  local seed
  for seed in $(seq 1 "$ensemble_size"); do
    bg_job "$exp/log/dnn_seed$seed.log" python -m asr_kd train-dnn "${dnn_args[@]}" --seed "$seed" --out "$exp/dnn/seed$seed"
  done
  bg_wait || { tail -n 5 "$exp"/log/dnn_seed*.log; return 1; }
  grep -H "best dev frame accuracy" "$exp"/log/dnn_seed*.log
}
train_students() {  # train_students SOFT_DIR OUT_DIR N_SEEDS [extra train-dnn args]
  local soft=$1 out=$2 n=$3 seed; shift 3
  local threads=$(( nj / n > 1 ? nj / n : 1 ))  # a lone student uses every core
  for seed in $(seq 101 $((100 + n))); do
    bg_job "$out.seed$seed.log" python -m asr_kd train-dnn "${dnn_args[@]}" --seed "$seed" --threads "$threads" \
      --soft-targets "$soft" --out "$out/seed$seed" "$@"
  done
  bg_wait || { tail -n 5 "$out".seed*.log; return 1; }
  grep -H "best dev frame accuracy" "$out".seed*.log
}
students() { ls "$1"/seed*/best.pt | paste -sd, -; }

temperature_sweep() {
  local t rows=()
  for t in $sweep_temperatures; do
    [ -f "$exp/soft_T$t/soft_targets.json" ] || \
      python -m asr_kd soft-targets "${soft_args[@]}" --temperature "$t" --out "$exp/soft_T$t"
    [ -f "$exp/student_T$t/seed101/history.json" ] || train_students "$exp/soft_T$t" "$exp/student_T$t" 1 --temperature "$t"
    rows+=("T=$t=$(students "$exp/student_T$t")")
  done
  python -m asr_kd frame-table "${table_args[@]}" --rows "${rows[@]}" --out "$exp/kd/table_5b_temperature" \
    --title "(5b) Distilled students by soft-target temperature (hard weight 0.5, T^2-scaled soft term)"
}

small_data() {
  local f=$small_fraction
  [ -f "$exp/small/hard/history.json" ] || \
    python -m asr_kd train-dnn "${dnn_args[@]}" --seed 1 --fraction "$f" --epochs 20 --out "$exp/small/hard" \
      > "$exp/log/small_hard.log" 2>&1
  [ -f "$exp/small/soft/history.json" ] || \
    python -m asr_kd train-dnn "${dnn_args[@]}" --seed 1 --fraction "$f" --epochs 20 --temperature "$temperature" \
      --soft-targets "$exp/soft_T$temperature" --out "$exp/small/soft" > "$exp/log/small_soft.log" 2>&1
  python -m asr_kd frame-table "${table_args[@]}" --train-fraction "$f" \
    --rows "baseline, 100% of the training data=$(members | paste -sd, -)" \
           "hard labels, $f of the data=$exp/small/hard/best.pt" \
           "soft targets of the full-data ensemble, $f of the data=$exp/small/soft/best.pt" \
    --out "$exp/kd/table_5c_small_data" \
    --title "(5c) Soft targets as a regulariser: $f of the training data" \
    --note "The baseline row's train column is measured on the same subset (it saw all of the data)."
}

topk_compare() {
  local k rows=("dense=$(students "$exp/student_T$temperature")") storage=("dense=$exp/soft_T$temperature")
  for k in $topk_values; do
    [ -f "$exp/soft_T${temperature}_top$k/soft_targets.json" ] || \
      python -m asr_kd soft-targets "${soft_args[@]}" --temperature "$temperature" --topk "$k" --out "$exp/soft_T${temperature}_top$k"
    [ -f "$exp/student_T${temperature}_top$k/seed101/history.json" ] || \
      train_students "$exp/soft_T${temperature}_top$k" "$exp/student_T${temperature}_top$k" 1 --temperature "$temperature"
    rows+=("top-$k=$(students "$exp/student_T${temperature}_top$k")")
    storage+=("top-$k=$exp/soft_T${temperature}_top$k")
  done
  python -m asr_kd frame-table "${table_args[@]}" --rows "${rows[@]}" --storage "${storage[@]}" \
    --out "$exp/kd/table_5d_topk" --title "(5d) Top-k vs. dense soft targets (T=$temperature)"
}

realign_and_compare() {
  [ -f "$exp/dnn_ali/summary.json" ] || python -m asr_kd realign-dnn --config "$config" --models $(members) --gmm-dir "$exp/mono" --lang "$data/lang" \
    --fbank-dir "$data/fbank" --corpus digits --out "$exp/dnn_ali"
  # same seed and threads as exp/dnn/seed1, so only the labels differ
  [ -f "$exp/dnn_realigned/seed1/history.json" ] || python -m asr_kd train-dnn --config "$config" --ali-dir "$exp/dnn_ali" --fbank-dir "$data/fbank" --corpus digits \
    --seed 1 --out "$exp/dnn_realigned/seed1" > "$exp/log/dnn_realigned_seed1.log" 2>&1
  python -m asr_kd alignment-table --fbank-dir "$data/fbank" --corpus digits \
    --rows "GMM (monophone)=$exp/mono=$exp/dnn/seed1/best.pt" \
           "realigned with the $ensemble_size-DNN ensemble=$exp/dnn_ali=$exp/dnn_realigned/seed1/best.pt" \
    --out "$exp/kd/table_alignments" --results-md "$exp/kd/RESULTS.md" \
    --title "Which alignment gives the better DNN (test set; DNNs with seed 1)"
}

run_stage 5 ensemble     train_ensemble
run_stage 6 soft-targets python -m asr_kd soft-targets "${soft_args[@]}" --temperature "$temperature" --out "$exp/soft_T$temperature"
run_stage 7 distill      train_students "$exp/soft_T$temperature" "$exp/student_T$temperature" "$student_seeds" --temperature "$temperature"
run_stage 8 results      python -m asr_kd speech-table --baselines $(members) \
                           --students $(students "$exp/student_T$temperature" | tr , ' ') \
                           --ali-dir "$exp/mono" --fbank-dir "$data/fbank" --corpus digits --out "$exp/kd/table_5a" \
                           --results-md "$exp/kd/RESULTS.md" \
                           --title "(5a) Baseline vs. $ensemble_size-model ensemble vs. distilled student (T=$temperature)"
run_stage 9 t-sweep      temperature_sweep
run_stage 10 small-data  small_data
run_stage 11 topk        topk_compare
run_stage 12 realign     realign_and_compare
run_stage 13 decode      python -m asr_kd decode --ali-dir "$exp/mono" --lang "$data/lang" --manifest-dir "$data/manifests" \
                           --fbank-dir "$data/fbank" --corpus digits --graph-dir "$exp/graph" --out "$exp/decode" \
                           --nj "$nj" --lmwt 1,2,3,5,7,10,14 --wip 0,1 --results-md "$exp/kd/RESULTS.md" \
                           --models "GMM (monophone)=$exp/mono/final.mdl" "baseline (seed 1)=$exp/dnn/seed1/best.pt" \
                                    "$ensemble_size-model ensemble=$(members | paste -sd, -)" \
                                    "distilled student (T=$temperature, seed 101)=$exp/student_T$temperature/seed101/best.pt" \
                           --title "WER: baseline vs. ensemble vs. distilled student (hybrid decoding, HCLG)"
pending_stage 14 k2-decode 6
echo "$0: stages $stage..$stop_stage done"
