"""Fan-out jobs through the recipes' ``--cmd`` (Kaldi's ``queue.pl`` / ``slurm.pl`` convention):

    local                     forked processes on this machine (the default; what --nj always did)
    slurm [sbatch options]    one Slurm job per call (``sbatch --wait``), e.g.
                              slurm --mem=4G --cpus-per-task=1 --partition=cpu --time=2:00:00

The library's parallel steps (alignment of a split, soft-target shards, decoding) hand their calls
to ``run_jobs``. Locally they keep their forked process pools (data inherited, nothing pickled);
under Slurm each call is pickled to ``job_dir/NAME.J.in.pkl`` on the shared filesystem, run by
``python -m asr_kd.utils.jobs IN OUT`` as its own job (log ``job_dir/NAME.J.log``) and its pickled
result read back, so the submitting process only waits. A failed job raises an error naming its
log. The bash side of the same option is ``utils/stages.sh`` (``run_job``).
"""

import os
import pickle
import shlex
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Sequence, Tuple

from asr_kd.utils.io import atomic_path


@dataclass(frozen=True)
class JobCmd:
    kind: str = "local"  # local | slurm
    options: Tuple[str, ...] = ()  # sbatch options

    @classmethod
    def parse(cls, spec) -> "JobCmd":
        if isinstance(spec, JobCmd):
            return spec
        words = shlex.split(spec or "local")
        if words[0] not in ("local", "slurm") or (words[0] == "local" and len(words) > 1):
            raise ValueError(f"--cmd must be 'local' or 'slurm [sbatch options]', not {spec!r}")
        bad = [w for w in words[1:] if not w.startswith("--")]
        if bad:
            raise ValueError(f"--cmd {spec!r}: sbatch options are written --name=value, not {bad}")
        return cls(words[0], tuple(words[1:]))

    @property
    def local(self) -> bool:
        return self.kind == "local"


def add_cmd_arg(parser) -> None:
    """The ``--cmd`` option of every command that fans out (default: $ASR_KD_CMD, else local)."""
    parser.add_argument(
        "--cmd",
        default=os.environ.get("ASR_KD_CMD", "local"),
        help="how parallel jobs run: local (forked processes), or 'slurm [sbatch options]'",
    )


def run_jobs(cmd, fn: Callable, calls: Sequence[tuple], *, job_dir, name: str) -> List[Any]:
    """``[fn(*args) for args in calls]`` with each call a Slurm job (results in order). ``fn`` must
    be a module-level function whose arguments pickle; it runs in a fresh process. Local commands are
    run in this process one after another (callers fork their own pools for local parallelism)."""
    cmd = JobCmd.parse(cmd)
    if cmd.local:
        return [fn(*args) for args in calls]
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, len(calls))) as pool:  # Slurm queues them; we only wait
        futures = [
            pool.submit(_slurm_call, cmd, fn, args, job_dir=job_dir, stem=f"{name}.{j}")
            for j, args in enumerate(calls, 1)
        ]
        return [f.result() for f in futures]


def _slurm_call(cmd: JobCmd, fn: Callable, args: tuple, *, job_dir: Path, stem: str) -> Any:
    inp, out, log = job_dir / f"{stem}.in.pkl", job_dir / f"{stem}.out.pkl", job_dir / f"{stem}.log"
    out.unlink(missing_ok=True)
    with atomic_path(inp) as tmp:
        tmp.write_bytes(pickle.dumps((fn, args)))
    script = job_dir / f"{stem}.sbatch"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f"cd {shlex.quote(os.getcwd())}\n"
        f"exec {shlex.join([sys.executable, '-m', 'asr_kd.utils.jobs', str(inp), str(out)])}\n"
    )
    r = subprocess.run(
        ["sbatch", "--wait", "--parsable", f"--job-name=asr_kd:{stem}", f"--output={log}", *cmd.options, str(script)],
        capture_output=True,
        text=True,
    )
    if not out.is_file():  # killed, out of time or memory, or never started
        raise RuntimeError(
            f"Slurm job {stem} failed (sbatch exit {r.returncode}: {r.stderr.strip()[-500:]}); see {log}"
        )
    ok, value = pickle.loads(out.read_bytes())
    if not ok:  # the call raised: its traceback
        raise RuntimeError(f"Slurm job {stem} failed; see {log}:\n{value}")
    inp.unlink()
    out.unlink()
    return value


def main(argv=None) -> int:
    """Run one pickled call (inside a Slurm job): IN holds (fn, args); OUT gets (ok, result or traceback)."""
    inp, out = (argv or sys.argv[1:])[:2]
    fn, args = pickle.loads(Path(inp).read_bytes())
    try:
        result, ok = fn(*args), True
    except Exception:  # the traceback goes to the log and back to the submitter
        result, ok = traceback.format_exc(), False
        print(result, file=sys.stderr)
    with atomic_path(out) as tmp:
        tmp.write_bytes(pickle.dumps((ok, result)))
    return 0 if ok else 1


if __name__ == "__main__":
    # the Kaldi-binding import order (asr_kd.kaldi) is respected by the unpickled function's own module
    sys.exit(main())
