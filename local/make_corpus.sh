#!/usr/bin/env bash
# Synthesise the embedded digit-string corpus (deterministic from the config's seed).
# Usage: local/make_corpus.sh [--config FILE] [--nj N] <corpus-dir>
set -euo pipefail
config=conf/default.yaml
nj=1
. utils/parse_options.sh
[ $# -eq 1 ] || { echo "Usage: $0 [--config FILE] [--nj N] <corpus-dir>" >&2; exit 1; }
python -m asr_kd synth-digits --config "$config" --nj "$nj" --out "$1"
