#!/usr/bin/env bash
# OpenSLR yesno through the whole asr_kd speech pipeline: manifests, lang, GMM alignment, DNN
# ensemble, soft targets, distilled students, HCLG decoding and WER. Corpus specifics are only
# stages 0-1; stages 2-15 are the default recipe's (../../run.sh), each through steps/.
set -euo pipefail
cd "$(dirname "$0")"
root=../..

stage=0
stop_stage=15
nj=2
ddp_procs=1         # data-parallel processes per network (utils/recipe.sh: --ddp-procs)
config=conf/yesno.yaml
data=data
exp=exp
corpus_dir=""       # a folder of the 60 yesno wav files; empty: download with lhotse (needs the internet)
ensemble_size=3
temperature=2
student_seeds=2
sweep_temperatures="2"
small_fraction=0.3
topk_values="5"
analysis=false       # the paper's analysis stages (9-12) need a larger corpus
deploy_table=true    # stage 15: the deployment table (the corpus is tiny: it costs seconds)
k2_members=all       # stage 14: every seed of each system with both decoders

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --stage N / --stop-stage N   stages to run [$stage..$stop_stage]
  --nj N              parallel jobs [$nj]
  --config FILE       YAML config [$config]
  --data DIR / --exp DIR       [$data, $exp]
  --corpus-dir DIR    the yesno wav files; empty string: download with lhotse [$corpus_dir]
  --ensemble-size N   [$ensemble_size]   --temperature T [$temperature]   --student-seeds N [$student_seeds]
  --analysis true|false       also the paper's analysis stages 9-12 [$analysis]
  --deploy-table true|false   stage 15: every system exported and the deployment table [$deploy_table]
  --k2-members N|all          stage 14: k2 vs. Kaldi on the first N seeds of each system [$k2_members]
Stages:
  0  corpus     check the local copy, or download it (lhotse)
  1  manifests  lhotse manifests: train (24), dev (6, held out of lhotse's train), test (30)
  2-8, 13-15  features, lang (Kaldi's yesno lexicon), alignment, ensemble, soft targets,
                distillation, frame-accuracy table, decoding and WER, k2, deployment (as in ../../run.sh)"

. $root/utils/recipe.sh

stage_key=$(stage_key_of "$config" local/lexicon.txt -- "$corpus_dir $ensemble_size $temperature $student_seeds")

get_corpus() {
  if [ -z "$corpus_dir" ]; then
    python -c "import sys; from asr_kd.data.importers import CorpusError, download_yesno as d
try: print(d('$data/download'))
except CorpusError as e: sys.exit(f'$0: {e}')"
  else
    ls "$corpus_dir"/*.wav > /dev/null || { echo "$0: no wav files in $corpus_dir" >&2; return 1; }
    echo "$(ls "$corpus_dir"/*.wav | wc -l) wav files in $corpus_dir"
  fi
}
wav_dir=${corpus_dir:-$data/download/waves_yesno}

run_stage 0 corpus    get_corpus
run_stage 1 manifests python -m asr_kd prepare-yesno --corpus-dir "$wav_dir" --out "$data/manifests"
ali=$exp/mono T=$temperature steps=$root/steps
common=(--config "$config" --nj "$nj")
search=(--manifest-dir "$data/manifests" --lmwt 1,2,3,5,7,10 --wip 0,1,2,4)
run_stage 2 features     python -m asr_kd compute-fbank "${common[@]}" --sample-rate 8000 --manifest-dir "$data/manifests" \
                           --out "$data/fbank"
run_stage 3 lang         python -m asr_kd prepare-lang --config "$config" --manifest-dir "$data/manifests" \
                           --dict-dir "$data/local/dict" --out "$data/lang"
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
