#!/usr/bin/env bash
# lhotse manifests for the embedded corpus: recordings, supervisions (speaker, text,
# eSpeak's oracle word/phone alignment) and cuts for train, dev and test.
# Usage: local/prepare_manifests.sh [--config FILE] <corpus-dir> <manifest-dir>
set -euo pipefail
config=conf/default.yaml
. utils/parse_options.sh
[ $# -eq 2 ] || { echo "Usage: $0 [--config FILE] <corpus-dir> <manifest-dir>" >&2; exit 1; }
python -m asr_kd prepare-digits --config "$config" --corpus-dir "$1" --out "$2"
