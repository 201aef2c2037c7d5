# Stage runner shared by every recipe's run.sh. Source after parse_options.sh.
# Needs: stage, stop_stage, exp (log + marker folder), stage_key (changes invalidate markers).
#
#   run_stage N NAME COMMAND [ARGS...]
# runs COMMAND when stage <= N <= stop_stage, logging to $exp/log/stage_N_NAME.log, and
# writes the marker $exp/done/stage_N_NAME last; a stage whose marker matches stage_key
# is skipped, so rerunning a recipe only does what is left.

run_stage() {
  local n=$1 name=$2; shift 2
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  local marker="$exp/done/stage_${n}_${name}" log="$exp/log/stage_${n}_${name}.log"
  mkdir -p "$exp/done" "$exp/log"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$stage_key" ]; then
    echo "stage $n ($name): done before, skipping (remove $marker to redo)"
    return 0
  fi
  # one run of a stage per exp folder: a second run.sh on the same folder would train over the first's models
  local lock_fd lock="$exp/log/stage_${n}_${name}.lock"
  exec {lock_fd}> "$lock"
  if command -v flock >/dev/null && ! flock -n "$lock_fd"; then
    echo "stage $n ($name): already running in another process on $exp (it holds $lock); wait for it or stop it" >&2
    exit 1
  fi
  echo "stage $n ($name): started $(date '+%F %T'), log: $log"
  local t0=$SECONDS
  # the stage's own processes do not inherit the lock: one left running would keep the stage locked
  if ! ( set -o pipefail; "$@" {lock_fd}>&- 2>&1 | tee "$log" ); then
    echo "stage $n ($name): FAILED, see $log" >&2
    exit 1
  fi
  exec {lock_fd}>&-
  echo "$stage_key" > "$marker.tmp" && mv "$marker.tmp" "$marker"
  printf '%s\t%s\t%s\n' "$n" "$name" "$((SECONDS - t0))" >> "$exp/log/stage_times.tsv"  # the RESULTS.md footer sums them
  echo "stage $n ($name): finished in $((SECONDS - t0)) s"
}

# Background jobs, at most $nj at a time:  bg_job LOG CMD...; ...; bg_wait
# Each job runs through $cmd (the recipes' --cmd, Kaldi's convention): "local" runs it here;
# "slurm [sbatch options]" submits it as one Slurm job and waits for it (utils/slurm_job.sh), e.g.
#   ./run.sh --cmd "slurm --mem=4G --cpus-per-task=1" --nj 8
_stages_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_bg_pids=()
run_job() {  # run_job LOG CMD...: one job, through $cmd
  local log=$1; shift
  case "${cmd:-local}" in
    local) "$@" > "$log" 2>&1 ;;
    slurm|slurm\ *)  # split the sbatch options as a shell would (quotes kept together), without eval
      local opts=()
      mapfile -d '' -t opts < <(printf '%s' "${cmd#slurm}" | xargs -r printf '%s\0') || return 2
      "$_stages_dir/slurm_job.sh" ${opts[@]+"${opts[@]}"} "$log" "$@" ;;
    *) echo "--cmd must be 'local' or 'slurm [sbatch options]', not '$cmd'" > "$log"; return 2 ;;
  esac
}
bg_job() {
  local log=$1; shift
  while [ "$(jobs -rp | wc -l)" -ge "$nj" ]; do sleep 1; done
  run_job "$log" "$@" &
  _bg_pids+=($!)
}
bg_wait() {
  local pid failed=0
  for pid in "${_bg_pids[@]}"; do wait "$pid" || failed=1; done
  _bg_pids=()
  return $failed
}

# Data-parallel network training (asr_kd.nnet.distributed), as one background job:
#   ddp_job LOG train-dnn ARGS...
# runs `python -m asr_kd train-dnn ARGS` on $ddp_procs processes: torchrun on this machine
# (--cmd local), or one Slurm job of $ddp_procs tasks started by srun (--cmd slurm: its sbatch
# options place the tasks, e.g. "slurm --nodes=2" for two machines; the ranks meet at the first).
# $nj counts processes: at most nj / ddp_procs such jobs run at a time.
ddp_job() {
  local log=$1; shift
  local procs=${ddp_procs:-1}
  if [ "$procs" -le 1 ]; then bg_job "$log" python -m asr_kd "$@"; return; fi
  local nj=$(( nj / procs > 1 ? nj / procs : 1 ))
  case "${cmd:-local}" in
    slurm|slurm\ *) cmd="$cmd --ntasks=$procs" bg_job "$log" srun --kill-on-bad-exit=1 python -m asr_kd "$@" ;;
    *) bg_job "$log" python -m torch.distributed.run --standalone --nproc_per_node "$procs" -m asr_kd "$@" ;;
  esac
}

# results_footer FILE [OPTIONS]: end FILE (a RESULTS.md) with the command, commit and machine of this run, and its
# stage times; OPTIONS go to `asr_kd results-footer` (e.g. --example FILE)
results_footer() {
  [ -f "$1" ] || return 0
  local md=$1; shift
  local commit dirty
  commit=$(git -C "$_stages_dir/.." rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$_stages_dir/.." status --porcelain --untracked-files=no 2>/dev/null | head -c 1)
  python -m asr_kd results-footer --results-md "$md" --command "$recipe_command" --commit "$commit" \
    --stage-times "$exp/log/stage_times.tsv" ${dirty:+--uncommitted} "$@" > /dev/null
}
