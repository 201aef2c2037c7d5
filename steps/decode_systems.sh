#!/usr/bin/env bash
# Decode the GMM, every ensemble member (each a baseline), the ensemble and every student with one HCLG,
# each tuned on dev on its own, and table their WER with paired comparisons (the WER table).
set -euo pipefail
config=""
manifest_dir=""     # transcripts for the LM (and its perplexities)
temperature=2       # the students' (their row name)
lmwt=1,2,3,5,8,13   # the dev grid; it widens past an edge when the optimum sits on it
wip=0,1
decode_opts=""      # further decode options, e.g. "--arpa LM.arpa --beam 12 --decoder kaldi"
title="WER: baseline vs. ensemble vs. distilled student (hybrid decoding, HCLG)"
help_message="Usage: $0 [options] ALI_DIR ENSEMBLE_DIR STUDENT_DIR OUT_DIR
Builds the bigram (or --decode-opts' --arpa) HCLG in OUT_DIR/../graph, decodes dev and test into lattices
for ALI_DIR's GMM, each member of ENSEMBLE_DIR, the ensemble, and each student of STUDENT_DIR (system ids
gmm, baseline, ensemble, student); LM weight and insertion penalty tuned on dev per seed; scoring in
OUT_DIR/<id>[/<seed>], the table in OUT_DIR/wer_table and OUT_DIR/../kd/RESULTS.md.
  --config FILE          the recipe's config (its corpus's held-out test accents are scored apart) [$config]
  --manifest-dir DIR     [$manifest_dir]
  --temperature T        [$temperature]
  --lmwt LIST / --wip LIST   [$lmwt / $wip]
  --decode-opts OPTS     [$decode_opts]  (--decoder k2-lattice: run in the k2 environment, .venv-k2;
                         with k2 opted out, Kaldi's lattice search)
  --title TEXT           [$title]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 4 $# "ALI_DIR ENSEMBLE_DIR STUDENT_DIR OUT_DIR"
ali=$1 ensemble=$2 students=$3 out=$4
exp=$(dirname "$out")
read_models members "$ensemble"
read_models student_models "$students"
rows=("gmm=$ali/final.mdl")  # system ids; a repeated id is one system's seeds
for m in "${members[@]}"; do rows+=("baseline=$m"); done
rows+=("ensemble=$ensemble")
for s in "${student_models[@]}"; do rows+=("student=$s"); done
decode_python
# shellcheck disable=SC2086  # decode_opts is a list of options
"$DECODE_PY" -m asr_kd decode --ali-dir "$ali" --manifest-dir "$manifest_dir" --graph-dir "$exp/graph" --out "$out" \
  --nj "$nj" --lmwt "$lmwt" --wip "$wip" $decode_opts --results-md "$exp/kd/RESULTS.md" ${config:+${config:+--config "$config"}} \
  --models "${rows[@]}" --compare baseline,ensemble baseline,student ensemble,student \
  --gain-kept baseline,ensemble,student --title "$title" \
  --labels "gmm=GMM ($(system_name "$(basename "$ali")"))" "ensemble=${#members[@]}-model ensemble" \
           "student=distilled student (T=$temperature)"
