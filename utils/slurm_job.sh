#!/usr/bin/env bash
# One command as one Slurm job, waited for (Kaldi's slurm.pl in spirit): the recipes' --cmd slurm.
#   utils/slurm_job.sh [sbatch options ...] LOG COMMAND [ARGS...]
# sbatch options are the words before LOG that start with --, e.g. --mem=4G --cpus-per-task=2
# --partition=cpu --gres=gpu:1 --time=4:00:00. The job runs COMMAND in the current directory with
# the current environment (sbatch's default --export=ALL: the project's .venv and PYTHONPATH), writes
# its output to LOG, and this script exits with the job's exit status (sbatch --wait).
set -euo pipefail
opts=()
while [ $# -gt 0 ] && [[ $1 == --* ]]; do opts+=("$1"); shift; done
[ $# -ge 2 ] || { echo "usage: $0 [sbatch options] LOG COMMAND [ARGS...]" >&2; exit 2; }
log=$1; shift
mkdir -p "$(dirname "$log")"
script="$log.sbatch"
{ echo "#!/usr/bin/env bash"; echo "cd $(printf %q "$PWD")"; printf 'exec'; printf ' %q' "$@"; echo; } > "$script"
sbatch --wait --parsable --job-name="asr_kd:$(basename "$log" .log)" --output="$log" ${opts[@]+"${opts[@]}"} "$script" > "$log.jobid"
