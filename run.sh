#!/usr/bin/env bash
# The default asr_kd recipe: Hinton-style distillation of a hybrid DNN-HMM acoustic model
# on the embedded digit-string corpus (synthesised offline with eSpeak NG).
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=15       # the core experiment; --full: 19
nj=2                # parallel processes
ddp_procs=1         # data-parallel processes per network (utils/recipe.sh: --ddp-procs)
config=conf/default.yaml
quick=false         # --quick: the tiny configuration (conf/tiny.yaml), outputs under $data/quick and $exp/quick
full=false          # --full: every opt-in part below, stages 0-19
analysis=false      # the paper's analysis stages 9-12
triphones=false     # stage 4 also trains tri1 and tri2; stage 16 compares the GMM systems and their labels
deploy_table=false  # stage 15 also trains quarter-width networks, exports every system and measures serving costs
k2_members=1        # stage 14: k2 vs. Kaldi's decoder on this many seeds of each system ("all": every seed)
data=data           # corpus, manifests, features
exp=exp             # models, logs (exp/log), completion markers (exp/done)
ensemble_size=4     # ensemble members (the paper used 10); they differ only in their seed
temperature=1       # soft-target temperature (picked on dev among 1, 2, 4, confirmed on test: docs/experiments.md (5e))
student_seeds=2     # distilled students, one per core (mean and std over seeds; each takes 20 online-taught epochs)
sweep_temperatures="1 2 5 10"
small_fraction=0.03 # the paper's "3% of the training data" experiment
topk_values="5 20"  # top-k soft targets compared with dense ones
gmm_systems=mono    # stage 4's GMM systems (--triphones: "mono tri1 tri2"; tri1 deltas, tri2 LDA+MLLT)
labels=mono         # whose alignments (pdfs) the networks of stages 5-15 train on
label_systems="mono tri2"     # stage 16 repeats stages 5-7 and 13 on each of these systems' labels
unlabelled_hours=0  # stage 0 also synthesises this many hours of untranscribed transfer audio (stage 18; --full: 3.2)
transfer_ratios="1 2 4"       # stage 18: students on labelled + R x as many untranscribed frames

help_message="Usage: $0 [options]
By default stages 0-15, the paper's core experiment: corpus, alignment, ensemble, soft targets,
students, the frame-accuracy table, decoding (Kaldi's decoder and k2) and the WER table, the
student exported as a model directory and one test file transcribed with it. The rest is opt-in:
--analysis, --triphones, --deploy-table, stages 17-19, or all of it with --full.
Options (defaults in brackets):
  --stage N          first stage to run [$stage]
  --stop-stage N     last stage to run (19 with --full) [$stop_stage]
  --nj N             parallel jobs [$nj]
  --config FILE      YAML config [$config]
  --quick            the same stages on the tiny corpus (conf/tiny.yaml; a smoke run of a few minutes),
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
                  stored with lhotse, pdf counts, report vs. eSpeak's oracle (exp/mono); with --triphones
                  also tri1 (deltas) and tri2 (LDA+MLLT), each from the previous one's alignments, with a
                  decision tree in Kaldi's formats (exp/tri1/tree, tree.txt)
  5  ensemble     DNN acoustic models, one per seed, --nj at a time (exp/dnn/seedN)
  6  soft-targets ensemble posteriors at temperature T, stored with lhotse (exp/soft_T)
  7  distill      distilled students at --temperature, --student-seeds seeds (exp/student_T/seedN)
  8  results      (5a) test frame accuracy: baseline / ensemble / student -> exp/kd, RESULTS.md
  9  t-sweep      (5b, --analysis) students at each of --sweep-temperatures
  10 small-data   (5c, --analysis) --small-fraction of the data: hard labels vs. soft targets of the full ensemble
  11 topk         (5d, --analysis) top-k vs. dense soft targets: accuracy and storage
  12 realign      (--analysis) realign every split with the ensemble (exp/dnn_ali); a DNN trained on it vs.
                  one trained on the GMM alignment, both scored against eSpeak's oracle phones
  13 decode       bigram LM, HCLG; every system's dev and test decoded once into lattices by k2 (Kaldi's lattice
                  search when k2 was opted out; exp/decode/*/lat.*.gz);
                  LM weight and insertion penalty tuned on dev on the lattices; WER of GMM / baseline /
                  ensemble / student, oracle WER, word confidences (exp/decode)
  14 k2-decode    systems decoded with k2 and with Kaldi's decoder (same graph, same likelihoods, dev-tuned
                  settings; --k2-members seeds each): WER of both, agreement, RTF (.venv-k2, built by
                  ./setup.sh; with ASR_KD_NO_K2=1 the tables state that k2 was not run)
  15 deploy       the student exported as a model directory (exp/deploy/student: ONNX, TorchScript, int8) and
                  one test file transcribed with it (exp/kd/transcribe_example.txt); with --deploy-table also
                  quarter-width networks, every system exported, and the deployment table: parameters, MFLOPs,
                  size, memory, RTF and WER as served, streaming vs. offline, export parity
  16 systems      (--triphones) every GMM system decoded on its own (context-dependent) HCLG; stages 5-7 and 13
                  repeated on the labels of each --label-systems system (exp/labels_tri2); the table of
                  pdfs, Gaussians, oracle alignment accuracy, HCLG size and WER (exp/kd/table_systems)
  17 teaching     students taught in other ways (members' short schedule, cosine, SpecAugment, an online
                  ensemble on augmented views) and a hard-label control, scored against the ensemble on dev:
                  table (5e); the stage-7 students' per-epoch diagnosis (exp/kd/diagnosis)
  18 transfer     (needs --unlabelled-hours H at stage 0) students that also learn from the ensemble on
                  untranscribed audio, one per --transfer-ratios R, scored like (5e)
  19 teachers     teacher quality and diversity: the ensemble joined by as many more dnn members, and by
                  tdnn members; students of the larger and the mixed-architecture ensembles, scored like (5e)
A finished stage is skipped on rerun (marker in \$exp/done, log in \$exp/log)."

root=.
. utils/recipe.sh
if $quick; then config=conf/tiny.yaml data=$data/quick exp=$exp/quick; fi
expand_opt_ins 0.745  # the labelled hours: --full, --triphones (utils/recipe.sh)

stage_key=$(stage_key_of "$config" -- "$ensemble_size $temperature $student_seeds $sweep_temperatures $small_fraction" \
                           "$topk_values $gmm_systems $labels $label_systems")

data_key=$(unlabelled_key)  # stages 0-2 redo (skipping what is complete) when --unlabelled-hours changes
ali=$exp/$labels T=$temperature
oracle=$( [ "$labels" = mono ] && echo "$exp/mono_oracle" || true )  # GMM on oracle phone times: monophone tree only
common=(--config "$config" --nj "$nj")
search=(--manifest-dir "$data/manifests" --lmwt 1,2,3,5,8,13 --wip 0,1)  # the dev grid widens past an edge
stage_key=$data_key run_stage 0 corpus local/make_corpus.sh "${common[@]}" --unlabelled-hours "$unlabelled_hours" \
                           "$data/corpus"
stage_key=$data_key run_stage 1 manifests local/prepare_manifests.sh --config "$config" "$data/corpus" "$data/manifests"
stage_key=$data_key run_stage 2 features python -m asr_kd compute-fbank "${common[@]}" --manifest-dir "$data/manifests" \
                           --out "$data/fbank"
run_stage 3 lang         python -m asr_kd prepare-lang --config "$config" --manifest-dir "$data/manifests" \
                           --dict-dir "$data/local/dict" --out "$data/lang"
run_stage 4 align        steps/train_gmms.sh "${common[@]}" --systems "$gmm_systems" --oracle-reference true \
                           "$data/fbank" "$data/lang" "$exp"
run_stage 5 ensemble     steps/train_ensemble.sh "${common[@]}" --ddp-procs "$ddp_procs" --members "$ensemble_size" \
                           "$ali" "$exp/dnn"
run_stage 6 soft-targets python -m asr_kd soft-targets --teachers "$exp/dnn" --ali-dir "$ali" --nj "$nj" \
                           --temperature "$T" --out "$exp/soft_T$T"
run_stage 7 distill      steps/distill.sh "${common[@]}" --ddp-procs "$ddp_procs" --seeds "$student_seeds" \
                           --temperature "$T" "$ali" "$exp/dnn" "$exp/soft_T$T" "$exp/student_T$T"
run_stage 8 results      python -m asr_kd speech-table --config "$config" --ali-dir "$ali" --baselines "$exp/dnn" \
                           --students "$exp/student_T$T" --out "$exp/kd/table_5a" --results-md "$exp/kd/RESULTS.md" \
                           --title "(5a) Baseline vs. $ensemble_size-model ensemble vs. distilled student (T=$T)"
if $analysis; then
  run_stage 9 t-sweep    steps/temperature_sweep.sh "${common[@]}" --temperatures "$sweep_temperatures" --reference "$T" \
                           "$ali" "$exp/dnn" "$exp"
  run_stage 10 small-data steps/small_data.sh "${common[@]}" --fraction "$small_fraction" --temperature "$T" \
                           "$ali" "$exp/dnn" "$exp/soft_T$T" "$exp"
  run_stage 11 topk      steps/topk.sh "${common[@]}" --temperature "$T" --topk-values "$topk_values" "$ali" "$exp/dnn" "$exp"
  run_stage 12 realign   steps/realign.sh "${common[@]}" "${search[@]}" --oracle-reference "$oracle" \
                           "$ali" "$exp/dnn" "$data/lang" "$exp"
fi
run_stage 13 decode      steps/decode_systems.sh "${common[@]}" "${search[@]}" --temperature "$T" \
                           --decode-opts "--decoder k2-lattice" "$ali" "$exp/dnn" "$exp/student_T$T" "$exp/decode"
run_stage 14 k2-decode   steps/k2_decode.sh --members "$k2_members" "$exp/decode" "$exp/decode_k2"
if $deploy_table; then
  run_stage 15 deploy    steps/deploy_table.sh "${common[@]}" "${search[@]}" --temperature "$T" \
                           "$ali" "$exp/dnn" "$exp/soft_T$T" "$exp/student_T$T" "$exp/decode" "$exp/deploy"
else
  run_stage 15 deploy    steps/export_student.sh --config "$config" --manifest-dir "$data/manifests" --temperature "$T" \
                           "$exp/student_T$T" "$exp/decode" "$exp/deploy"
fi
if [ "$gmm_systems" != mono ]; then
  run_stage 16 systems   steps/compare_systems.sh "${common[@]}" "${search[@]}" --systems "$gmm_systems" \
                           --labels "$labels" --label-systems "$label_systems" --members "$ensemble_size" \
                           --seeds "$student_seeds" --temperature "$T" --ddp-procs "$ddp_procs" \
                           --k2-members "$k2_members" "$exp"
fi
run_stage 17 teaching    steps/teaching_levers.sh "${common[@]}" --temperature "$T" \
                           "$ali" "$exp/dnn" "$exp/soft_T$T" "$exp/student_T$T" "$exp"
stage_key="$stage_key $transfer_ratios" \
run_stage 18 transfer    steps/transfer.sh "${common[@]}" --temperature "$T" --ratios "$transfer_ratios" \
                           "$ali" "$exp/dnn" "$exp/soft_T$T" "$exp/student_T$T" "$exp"
run_stage 19 teachers    steps/teacher_diversity.sh "${common[@]}" --temperature "$T" \
                           "$ali" "$exp/dnn" "$exp/student_T$T" "$exp"
results_footer "$exp/kd/RESULTS.md" --example "$exp/kd/transcribe_example.txt"
echo "$0: stages $stage..$stop_stage done"
