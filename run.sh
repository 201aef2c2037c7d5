#!/usr/bin/env bash
# The default asr_kd recipe: Hinton-style distillation of a hybrid DNN-HMM acoustic model
# on the embedded digit-string corpus (synthesised offline with eSpeak NG).
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=16       # 16: GMM systems and senone labels; 15: deploy; stage 14 decodes with k2 (.venv-k2, built by ./setup.sh; ASR_KD_NO_K2=1 states its absence instead)
nj=2                # parallel processes
ddp_procs=1         # data-parallel processes per network (utils/recipe.sh: --ddp-procs)
config=conf/default.yaml
quick=false         # --quick: the tiny configuration (conf/tiny.yaml), outputs under $data/quick and $exp/quick
data=data           # corpus, manifests, features
exp=exp             # models, logs (exp/log), completion markers (exp/done)
ensemble_size=4     # ensemble members (the paper used 10); they differ only in their seed
temperature=2       # soft-target temperature for the distilled student
student_seeds=3     # distilled students (mean and std over seeds)
sweep_temperatures="1 2 5 10"
small_fraction=0.03 # the paper's "3% of the training data" experiment
topk_values="5 20"  # top-k soft targets compared with dense ones
gmm_systems="mono tri1 tri2"  # stage 4's GMM systems: monophone, then triphone trees (tri1 deltas, tri2 LDA+MLLT)
labels=mono         # whose alignments (pdfs) the networks of stages 5-15 train on
label_systems="mono tri2"     # stage 16 repeats stages 5-7 and 13 on each of these systems' labels
unlabelled_hours=0  # stage 0 also synthesises this many hours of untranscribed transfer audio (stage 18)
transfer_ratios="1 2 4"       # stage 18: students on labelled + R x as many untranscribed frames

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --stage N          first stage to run [$stage]
  --stop-stage N     last stage to run [$stop_stage]
  --nj N             parallel jobs [$nj]
  --config FILE      YAML config [$config]
  --quick            a smoke run of the same stages on the tiny corpus (conf/tiny.yaml; under 4 min),
                     outputs under DATA/quick and EXP/quick [$quick]
  --data DIR         data folder [$data]
  --exp DIR          experiment folder [$exp]
  --ensemble-size N  DNN ensemble members [$ensemble_size]
  --temperature T    soft-target temperature [$temperature]
  --student-seeds N  distilled students [$student_seeds]
  --sweep-temperatures LIST   temperatures for stage 9 [$sweep_temperatures]
  --small-fraction F training fraction for stage 10 [$small_fraction]
  --topk-values LIST          top-k sizes for stage 11 [$topk_values]
  --gmm-systems LIST GMM systems of stage 4, mono first [$gmm_systems]
  --labels SYSTEM    the system whose alignments the networks train on [$labels]
  --label-systems LIST        stage 16: the networks on each of these systems' labels [$label_systems]
  --unlabelled-hours H        stage 0: also H hours of untranscribed transfer audio, for stage 18 [$unlabelled_hours]
  --transfer-ratios LIST      stage 18: untranscribed frames per labelled frame, one student each [$transfer_ratios]
Stages:
  0  corpus       synthesise the digit-string corpus (local/make_corpus.sh)
  1  manifests    lhotse recordings/supervisions/cuts per split (local/prepare_manifests.sh)
  2  features     log-mel fbank with lhotse + CMVN statistics
  3  lang         lexicon (eSpeak G2P), phones, L.fst, HMM topology (data/lang)
  4  align        monophone GMM-HMM from a flat start; pdf/phone labels for every split
                  stored with lhotse, pdf counts, report vs. eSpeak's oracle (exp/mono); then the
                  triphone systems of --gmm-systems, each from the previous one's alignments: a
                  decision tree in Kaldi's formats (exp/tri1/tree, tree.txt), tri1 (deltas), tri2 (LDA+MLLT)
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
  14 k2-decode    every system decoded with k2 and with Kaldi's decoder (same graph, same likelihoods,
                  dev-tuned settings): WER of both per system, agreement, RTF (.venv-k2, built by
                  ./setup.sh; with ASR_KD_NO_K2=1 the tables state that k2 was not run)
  15 deploy       quarter-width networks (hard labels / distilled); every system exported as a model
                  directory (exp/deploy/*: ONNX, TorchScript, int8); the deployment table: parameters,
                  MFLOPs, size, memory, RTF and WER as served, streaming vs. offline, export parity
  16 systems      every GMM system decoded on its own (context-dependent) HCLG; stages 5-7 and 13
                  repeated on the labels of each --label-systems system (exp/labels_tri2); the table of
                  pdfs, Gaussians, oracle alignment accuracy, HCLG size and WER (exp/kd/table_systems)
  17 teaching     (run it with --stage 17 --stop-stage 17) students taught in other ways (members' short schedule,
                  cosine, SpecAugment, an online ensemble on augmented views) and a hard-label control, scored
                  against the ensemble on dev: table (5e); the stage-7 students' per-epoch diagnosis (exp/kd/diagnosis)
  18 transfer     (with --unlabelled-hours H at stage 0; run it with --stage 18 --stop-stage 18) students that also
                  learn from the ensemble on untranscribed audio, one per --transfer-ratios R, scored like (5e)
A finished stage is skipped on rerun (marker in \$exp/done, log in \$exp/log)."

root=.
. utils/recipe.sh
if $quick; then config=conf/tiny.yaml data=$data/quick exp=$exp/quick; fi

stage_key=$(stage_key_of "$config" -- "$ensemble_size $temperature $student_seeds $sweep_temperatures $small_fraction $topk_values $gmm_systems $labels $label_systems")

data_key=$(unlabelled_key)  # stages 0-2 redo (skipping what is complete) when --unlabelled-hours changes
stage_key=$data_key run_stage 0 corpus local/make_corpus.sh --config "$config" --nj "$nj" \
  --unlabelled-hours "$unlabelled_hours" "$data/corpus"
stage_key=$data_key run_stage 1 manifests local/prepare_manifests.sh --config "$config" "$data/corpus" "$data/manifests"
corpus=digits
oracle_reference=true  # the embedded corpus has oracle phone times: stage 4 also trains the GMM on them (a reference)
. utils/kd_stages.sh
echo "$0: stages $stage..$stop_stage done"
