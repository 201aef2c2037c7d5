#!/usr/bin/env bash
# A large-vocabulary read-speech task generated offline: sentences of real English text (the King
# James Bible by default, or any text, one sentence a line) spoken by synthetic eSpeak NG voices
# under the digit corpus's degradations, with oracle word and phone times. Stage 0 synthesises the
# corpus; stage 1 writes manifests and trains a pruned 3-gram (kenlm lmplz) on the LM-only text;
# stages 2-19 are the speech stages of the default recipe (../../run.sh; by default the core experiment, 0-15):
# CMUdict lexicon with eSpeak G2P for the rest, monophone GMM, DNN ensemble, distillation, HCLG decoding with the 3-gram.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")"
root=../..

stage=0
stop_stage=15         # the core experiment (utils/recipe.sh: expand_opt_ins); --full: 19
nj=2
ddp_procs=1         # data-parallel processes per network (utils/recipe.sh: --ddp-procs)
size=default          # tiny (tests, seconds) | default (the recipe, stages 0-15 in 147 min on 2 busy cores) | large (>= 100 h, scale benchmarks)
config=""             # default: conf/$size.yaml
text=""               # one sentence a line; empty: the King James Bible (local/kjv_text.sh)
data=data
exp=exp
full=false            # --full: every opt-in part below, stages 0-19
analysis=false        # the paper's analysis stages 9-12 (temperature sweep, small data, top-k, realignment)
triphones=false       # stage 4 also trains tri1 and tri2; stage 16
deploy_table=false    # stage 15: every system exported and the deployment table
k2_members=1          # stage 14: k2 vs. Kaldi on this many seeds of each system (all: every seed)
ensemble_size=4
temperature=2
student_seeds=3
sweep_temperatures="1 2 5 10"
small_fraction=0.03
topk_values="5 20"
gmm_systems=mono      # stage 4 (--triphones: "mono tri1 tri2", triphone trees: tri1 deltas, tri2 LDA+MLLT)
labels=mono           # the system whose alignments the networks of stages 5-15 train on
label_systems="mono tri2"     # stage 16: the network stages repeated on each of these systems' labels
unlabelled_hours=0    # stage 0: also this many hours of untranscribed transfer audio (stage 18)
transfer_ratios="1 2 4"       # stage 18: untranscribed frames per labelled frame, one student each

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --size tiny|default|large   corpus and model sizes (conf/SIZE.yaml) [$size]
  --text FILE        the text to read, one sentence a line [the King James Bible]
  --config FILE  --data DIR  --exp DIR  --nj N  --stage N / --stop-stage N [$stage..$stop_stage]
  --ensemble-size N [$ensemble_size]  --temperature T [$temperature]  --student-seeds N [$student_seeds]
  --gmm-systems LIST [$gmm_systems]  --labels SYSTEM [$labels]  --label-systems LIST [$label_systems]
  --unlabelled-hours H  stage 0: also H hours of untranscribed audio (sentences of no dev or test utterance) [$unlabelled_hours]
  --transfer-ratios LIST        stage 18: untranscribed frames per labelled frame, one student each [$transfer_ratios]
Stages:
  0  corpus     the text (local/kjv_text.sh) and the synthetic corpus (synth-readspeech)
  1  manifests  lhotse manifests (oracle phones in ARPAbet), the pruned 3-gram LM of the decoding
                graph and the unpruned 4-gram that rescores its lattices, with perplexities and
                OOV rates on dev and test (train-lm)
  2-19          as in the default recipe (../../run.sh --help); the lexicon is CMUdict + eSpeak G2P
                over the training and LM words, the decoding graph uses the 3-gram."

. $root/utils/recipe.sh

text=$(from_caller "$text")
expand_opt_ins 1  # the labelled hours of --size default: --full, --triphones (utils/recipe.sh)
[ -n "$config" ] || config=conf/$size.yaml
[ -f "$config" ] || { echo "$0: config $config not found (--size tiny|default|large)" >&2; exit 1; }
stage_key=$(stage_key_of "$config" -- "$text $ensemble_size $temperature $student_seeds $sweep_temperatures $small_fraction $topk_values $gmm_systems $labels $label_systems")

make_corpus() {
  local src=$text
  if [ -z "$src" ]; then src=$data/text/kjv.txt; local/kjv_text.sh "$src"; fi
  python -m asr_kd synth-readspeech --config "$config" --text "$src" --nj "$nj" --out "$data/corpus" \
    --unlabelled-hours "$unlabelled_hours"
  du -sh "$data/corpus" | sed 's/^/corpus size on disk: /'
}
manifests_and_lm() {
  python -m asr_kd prepare-readspeech --config "$config" --corpus-dir "$data/corpus" --out "$data/manifests"
  python -m asr_kd train-lm --config "$config" --text "$data/corpus/lm/text.txt" --out "$data/lm/3gram.arpa" \
    --manifest-dir "$data/manifests" --corpus readspeech
  # the large LM that rescores the lattices (Kaldi's lmrescore_const_arpa): unpruned, one order more
  python -m asr_kd train-lm --config "$config" --text "$data/corpus/lm/text.txt" --out "$data/lm/4gram.arpa" \
    --manifest-dir "$data/manifests" --corpus readspeech --order 4 --no-prune
}
data_key=$(unlabelled_key)  # stages 0-2 redo (skipping what is complete) when --unlabelled-hours changes
stage_key=$data_key run_stage 0 corpus    make_corpus
stage_key=$data_key run_stage 1 manifests manifests_and_lm
ali=$exp/$labels T=$temperature steps=$root/steps
common=(--config "$config" --nj "$nj")
# the decoding graph uses the pruned 3-gram. Each split is decoded once into lattices searched by k2 (single-thread
# RTF 0.038 at beam 12 on this 1.1M-state graph, as the 1-best LatticeFasterDecoder's 0.037; Kaldi's
# LatticeSimpleDecoder, 0.22, is the fallback without k2) and the 8 x 3 grid is swept on them. 4-gram rescoring of the lattices (stage 1 trains it):
#   --decode-opts "... --rescore-arpa $data/lm/4gram.arpa"
# One LM weight for every network (--lm-tuning shared): dev has no held-out accent, and on it weights 6 and 9
# differ by a few words for every network while on test they differ by hundreds of insertions, so a per-seed
# choice adds noise the acoustic models do not make (docs/experiments.md, "Read speech").
search=(--manifest-dir "$data/manifests" --lmwt 4,5,6,7,8,9,11,13 --wip 0,0.5,1
        --decode-opts "--arpa $data/lm/3gram.arpa --beam 12 --max-active 5000 --decoder k2-lattice --lm-tuning shared")
stage_key=$data_key run_stage 2 features python -m asr_kd compute-fbank "${common[@]}" --sample-rate 16000 \
                           --manifest-dir "$data/manifests" --out "$data/fbank"
# words.txt: the training words and the LM's, never dev's or test's
run_stage 3 lang         python -m asr_kd prepare-lang --config "$config" --manifest-dir "$data/manifests" \
                           --lm-vocab "$data/lm/3gram.arpa" --dict-dir "$data/local/dict" --out "$data/lang"
run_stage 4 align        $steps/train_gmms.sh "${common[@]}" --systems "$gmm_systems" "$data/fbank" "$data/lang" "$exp"
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
                           --title "WER: baseline vs. ensemble vs. distilled student (read speech, pruned 3-gram HCLG)" \
                           "$ali" "$exp/dnn" "$exp/student_T$T" "$exp/decode"
run_stage 14 k2-decode   $steps/k2_decode.sh --members "$k2_members" --k2-opts "--beam 12" "$exp/decode" "$exp/decode_k2"
# the deployed decoder searches as the decode stage did
if $deploy_table; then
  run_stage 15 deploy    $steps/deploy_table.sh "${common[@]}" "${search[@]}" --temperature "$T" \
                           --export-opts "--beam 12 --max-active 5000" \
                           "$ali" "$exp/dnn" "$exp/soft_T$T" "$exp/student_T$T" "$exp/decode" "$exp/deploy"
else
  run_stage 15 deploy    $steps/export_student.sh --config "$config" --manifest-dir "$data/manifests" --temperature "$T" \
                           --export-opts "--beam 12 --max-active 5000" "$exp/student_T$T" "$exp/decode" "$exp/deploy"
fi
if [ "$gmm_systems" != mono ]; then
  run_stage 16 systems   $steps/compare_systems.sh "${common[@]}" "${search[@]}" --systems "$gmm_systems" \
                           --labels "$labels" --label-systems "$label_systems" --members "$ensemble_size" \
                           --seeds "$student_seeds" --temperature "$T" --ddp-procs "$ddp_procs" \
                           --k2-members "$k2_members" --k2-opts "--beam 12" "$exp"
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
