# The shared header of steps/*.sh (Kaldi's steps/ convention): a step sets its option defaults and
# help_message, then sources this file, and takes its input and output folders as arguments:
#     steps/train_ensemble.sh --members 4 exp/mono exp/dnn
# It puts the project's environment first (path.sh), turns --options into those variables
# (parse_options.sh), sends the Python steps' fan-out through --cmd, and loads the job runner of
# utils/stages.sh (bg_job, bg_wait, ddp_job). It defines:
#   step_usage N "ARG ..."   exit with the usage line unless the step got N positional arguments
#   read_models ARRAY DIR    ARRAY := the checkpoints DIR/models.txt lists (a folder of ensemble members or
#                            students), or exit naming DIR
#   write_models DIR PATH... record PATH... (inside DIR) as DIR's models.txt, atomically
#   system_name SYSTEM       a table's row name for a GMM system (mono, tri1, tri2)
#   recorded DIR NAME        what DIR records it was made from (made_from.json): fbank_dir, lang, corpus
#   hard_weight CONFIG       the weight of the hard-label term in CONFIG's distill section
#   k2_env                   K2_PYTHON := the k2 environment's Python (.venv-k2 once set up complete, or
#                            $ASR_KD_K2_PYTHON) and 0, or
#                            K2_ABSENT := why there is none and 1 when k2 was opted out or could not be built;
#                            exits saying what to run when it is merely missing
#   decode_python            DECODE_PY := the Python that runs a decode with $decode_opts: the k2 environment's
#                            for --decoder k2-lattice (without one, Kaldi's lattice search, said on stderr)
_step_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$_step_root/path.sh"
cmd=${cmd:-${ASR_KD_CMD:-local}}
nj=${nj:-1}
help_message="$help_message
  --nj N          processes at once [$nj]
  --cmd CMD       how parallel jobs run: local, or \"slurm [sbatch options]\" [$cmd]"
. "$_step_root/utils/parse_options.sh"
export ASR_KD_CMD="$cmd"
. "$_step_root/utils/stages.sh"

step_usage() {
  if [ "$1" != "$2" ]; then
    printf '%s\n' "$help_message" | head -n 1 >&2
    echo "$0: expected $1 arguments ($3), got $2; see --help" >&2
    exit 1
  fi
}
read_models() {  # in this shell, not a subshell, so that a bad folder stops the step
  local -n _models=$1
  local line
  [ -f "$2/models.txt" ] || { echo "$0: $2 has no models.txt (not a folder of trained models)" >&2; exit 1; }
  _models=()
  while IFS= read -r line; do  # paths from the file stay inside the folder, as asr_kd.cli.common.model_paths checks
    case "/$line/" in */../*|//*) echo "$0: $2/models.txt: $line leaves the folder" >&2; exit 1 ;; esac
    [ -n "$line" ] && _models+=("$2/$line")
  done < "$2/models.txt"
  [ ${#_models[@]} -gt 0 ] || { echo "$0: $2/models.txt lists no checkpoints" >&2; exit 1; }
}
write_models() {
  local dir=$1; shift
  printf '%s\n' "${@#$dir/}" > "$dir/models.txt.tmp" && mv "$dir/models.txt.tmp" "$dir/models.txt"
}
system_name() {
  case $1 in mono) echo "monophone";; tri1) echo "tri1, deltas";; tri2) echo "tri2, LDA+MLLT";; *) echo "$1";; esac
}
recorded() {  # recorded DIR NAME: what DIR's made_from.json records as NAME (fbank_dir, lang, corpus, ...)
  python -c 'import sys; from asr_kd.utils.made_from import read_made_from as r; print(r(sys.argv[1])[sys.argv[2]])' \
    "$1" "$2" || { echo "$0: $1 records no $2 (its made_from.json)" >&2; return 1; }
}
hard_weight() {  # hard_weight CONFIG: the hard-label term's weight of the config's distill section
  python -c 'import sys; from asr_kd.utils.config import section; from asr_kd.nnet.losses import LossConfig
print("%g" % section(sys.argv[1] or None, "distill", LossConfig).hard_weight)' "$1"
}
k2_env() {
  K2_PYTHON=${ASR_KD_K2_PYTHON:-$_step_root/.venv-k2/bin/python} K2_ABSENT=""
  # .venv-k2 counts once tools/k2_lane.sh finished setting it up (a build cut short has a python, no packages)
  if [ -x "$K2_PYTHON" ] && { [ -n "${ASR_KD_K2_PYTHON:-}" ] || "$_step_root/tools/k2_lane.sh" --check; }; then
    return 0
  fi
  if [ "${ASR_KD_NO_K2:-0}" = 1 ]; then
    K2_ABSENT="k2 was opted out (ASR_KD_NO_K2=1 or ./setup.sh --no-k2)"
  elif [ -f "$_step_root/.venv-k2.unavailable" ]; then
    K2_ABSENT="./setup.sh could not build the k2 environment: $(head -c 300 "$_step_root/.venv-k2.unavailable")"
  else
    echo "$0 needs the k2 environment ($K2_PYTHON): run ./setup.sh (or tools/k2_lane.sh --setup), or opt out with ASR_KD_NO_K2=1" >&2
    exit 1
  fi
  return 1
}
decode_python() {
  DECODE_PY=python
  case " $decode_opts " in
    *" k2-lattice "*)  # k2 searches the lattices: the decode runs in the k2 environment
      if k2_env; then DECODE_PY=$K2_PYTHON
      else echo "$0: lattices searched by Kaldi's decoder, not k2: $K2_ABSENT" >&2; decode_opts=${decode_opts//k2-lattice/lattice}
      fi ;;
  esac
}
