#!/usr/bin/env bash
# k2 beside Kaldi's decoder: the decode stage's systems searched again by both, same graph, same likelihoods.
set -euo pipefail
members=all        # the first N seeds of each system, or all
k2_opts=""         # further decoder-agreement options, e.g. "--beam 12" for a large graph
help_message="Usage: $0 [options] DECODE_DIR OUT_DIR
Decodes the systems of DECODE_DIR (steps/decode_systems.sh; its graph, alignment and dev-tuned settings)
with k2 and with Kaldi's decoder and tables their WER, agreement and RTF: OUT_DIR/agreement, into
DECODE_DIR/../kd/RESULTS.md. k2 runs in its own environment, .venv-k2 (built by ./setup.sh) or
\$ASR_KD_K2_PYTHON; without it the table states why (ASR_KD_NO_K2=1, or ./setup.sh could not build k2),
and the step fails when neither explains its absence.
  --members N     [$members]
  --k2-opts OPTS  [$k2_opts]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 2 $# "DECODE_DIR OUT_DIR"
decode=$1 out=$2
results=$(dirname "$decode")/kd/RESULTS.md
title="k2 vs. Kaldi decoder: same graph, same likelihoods (test set)"
if ! k2_env; then
  echo "$0: no k2 decoding: $K2_ABSENT" >&2
  exec python -m asr_kd decoder-agreement --absent "$K2_ABSENT" --decode-dir "$decode" --out "$out/agreement" \
    --results-md "$results" --title "$title"
fi
# shellcheck disable=SC2086  # k2_opts is a list of options
"$K2_PYTHON" -m asr_kd decoder-agreement --decode-dir "$decode" --out "$out/agreement" --results-md "$results" \
  --title "$title" $k2_opts $( [ "$members" = all ] || echo --members "$members" )
