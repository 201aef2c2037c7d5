#!/usr/bin/env bash
# Ship the distilled student: a model directory, and one test file transcribed with it.
set -euo pipefail
config=""
manifest_dir=""      # where the test file comes from
temperature=2
export_opts=""       # e.g. the decode stage's "--beam 12 --max-active 5000"
help_message="Usage: $0 [options] STUDENT_DIR DECODE_DIR OUT_DIR
Exports STUDENT_DIR's first student as OUT_DIR/student (ONNX, TorchScript, int8; the decoder settings it
was tuned to in DECODE_DIR), transcribes one test file of --manifest-dir with it, and writes the command and
its output to DECODE_DIR/../kd/transcribe_example.txt.
  --config FILE  [$config]   --manifest-dir DIR [$manifest_dir]   --temperature T [$temperature]
  --export-opts OPTS [$export_opts]"
. "$(dirname "$0")/../utils/step.sh"
step_usage 3 $# "STUDENT_DIR DECODE_DIR OUT_DIR"
students=$1 decode=$2 out=$3
example=$(dirname "$decode")/kd/transcribe_example.txt
read_models student_models "$students"
mkdir -p "$out"
# shellcheck disable=SC2086  # export_opts is a list of options
python -m asr_kd export ${config:+--config "$config"} $export_opts --name "distilled student (T=$temperature)" \
  --decode-dir "$decode" --out "$out/student" --checkpoints "${student_models[0]}"
wav=$(python -m asr_kd example-audio --manifest-dir "$manifest_dir" --split test)
{ echo "# python -m asr_kd transcribe --model-dir $out/student ${wav%%$'\t'*}"
  echo "# reference: ${wav#*$'\t'}"
  python -m asr_kd transcribe --model-dir "$out/student" "${wav%%$'\t'*}"; } > "$example.tmp"
mv "$example.tmp" "$example" && cat "$example"
