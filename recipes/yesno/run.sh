#!/usr/bin/env bash
# OpenSLR yesno through the whole asr_kd speech pipeline: manifests, lang, GMM alignment, DNN
# ensemble, soft targets, distilled students, HCLG decoding and WER. Corpus specifics are only
# stages 0-1; stages 2-15 are the shared ones (utils/kd_stages.sh).
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

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --stage N / --stop-stage N   stages to run [$stage..$stop_stage]
  --nj N              parallel jobs [$nj]
  --config FILE       YAML config [$config]
  --data DIR / --exp DIR       [$data, $exp]
  --corpus-dir DIR    the yesno wav files; empty string: download with lhotse [$corpus_dir]
  --ensemble-size N   [$ensemble_size]   --temperature T [$temperature]   --student-seeds N [$student_seeds]
Stages:
  0  corpus     check the local copy, or download it (lhotse)
  1  manifests  lhotse manifests: train (24), dev (6, held out of lhotse's train), test (30)
  2-8, 13-15  features, lang (Kaldi's yesno lexicon), alignment, ensemble, soft targets,
                distillation, frame-accuracy table, decoding and WER, k2, deployment (utils/kd_stages.sh)"

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
corpus=yesno
sample_rate=8000
analysis=false          # the paper's analysis stages (9-12) need a larger corpus
decode_lmwt=1,2,3,5,7,10
decode_wip=0,1,2,4
. $root/utils/kd_stages.sh
echo "$0: stages $stage..$stop_stage done; tables in $exp/kd/RESULTS.md"
