#!/usr/bin/env bash
# Synthesise the embedded digit-string corpus (deterministic from the config's seed).
# --unlabelled-hours H: also H hours of untranscribed transfer audio in <corpus-dir>/unlabelled.
# Usage: local/make_corpus.sh [--config FILE] [--nj N] [--unlabelled-hours H] <corpus-dir>
set -euo pipefail
config=conf/default.yaml
nj=1
unlabelled_hours=0
. utils/parse_options.sh
[ $# -eq 1 ] || { echo "Usage: $0 [--config FILE] [--nj N] [--unlabelled-hours H] <corpus-dir>" >&2; exit 1; }
python -m asr_kd synth-digits --config "$config" --nj "$nj" --unlabelled-hours "$unlabelled_hours" --out "$1"
