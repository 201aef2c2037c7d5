#!/usr/bin/env bash
# GMM-HMM systems, each from the previous one's alignments, and the alignment of every split.
set -euo pipefail
config=""
systems=mono            # mono first (the flat start); then triphone systems named by their config sections
oracle_reference=false  # also a monophone GMM trained on the corpus's oracle phone times (EXP/mono_oracle)
help_message="Usage: $0 [options] FBANK_DIR LANG_DIR EXP
Trains EXP/mono from a flat start, then each further system of --systems from the previous one's
alignments (tri1: deltas, tri2: LDA+MLLT, with Kaldi-format trees); each EXP/SYSTEM holds final.mdl
and the pdf/phone labels of every split.
  --config FILE              YAML config [$config]
  --systems LIST             GMM systems, mono first [$systems]
  --oracle-reference BOOL    also EXP/mono_oracle, trained on oracle phone times [$oracle_reference]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 3 $# "FBANK_DIR LANG_DIR EXP"
fbank=$1 lang=$2 exp=$3
[ "${systems%% *}" = mono ] || { echo "$0: --systems must start with mono (the flat start), not '$systems'" >&2; exit 1; }

python -m asr_kd train-mono ${config:+--config "$config"} --nj "$nj" --fbank-dir "$fbank" --lang "$lang" --exp "$exp/mono"
if $oracle_reference; then
  python -m asr_kd train-oracle-gmm ${config:+--config "$config"} --nj "$nj" --fbank-dir "$fbank" --lang "$lang" \
    --exp "$exp/mono_oracle"
fi
prev=mono
for sys in ${systems#mono}; do
  python -m asr_kd train-tri ${config:+--config "$config"} --system "$sys" --nj "$nj" --prev-dir "$exp/$prev" \
    --fbank-dir "$fbank" --lang "$lang" --exp "$exp/$sys"
  prev=$sys
done
