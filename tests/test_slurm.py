"""The recipes' --cmd slurm against a real single-node Slurm (Debian's slurm-wlm, started here on
localhost with its own ports): jobs run as Slurm jobs, their output lands in the job logs, and a
failing job fails bg_wait. ``./setup.sh --dev`` installs slurm-wlm when it runs as root."""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if shutil.which("slurmctld") is None or shutil.which("slurmd") is None:
        pytest.skip("slurm-wlm is not installed (./setup.sh --dev installs it when run as root)")
    d = tmp_path_factory.mktemp("slurm")
    host = socket.gethostname()
    conf = d / "slurm.conf"
    conf.write_text(f"""ClusterName=asrkd
SlurmctldHost={host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
NodeName={host} CPUs={os.cpu_count()} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    for sub in ("state", "spool"):
        (d / sub).mkdir()
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = [subprocess.Popen(["slurmctld", "-D", "-i"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
               subprocess.Popen(["slurmd", "-D"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(120):
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.25)
        else:
            raise RuntimeError(f"the local Slurm did not come up (sinfo: {state!r}); logs in {d}")
        yield env, d
    finally:
        for p in daemons:
            p.terminate()
        for p in daemons:
            p.wait(timeout=30)


def test_fan_out_jobs_run_as_slurm_jobs(slurm, tiny_graph, tiny_features, tmp_path):
    env, _ = slurm
    root, _ = tiny_graph
    train = [sys.executable, "-m", "asr_kd", "train-dnn", "--ali-dir", str(root / "exp"), "--fbank-dir",
             str(tiny_features / "fbank"), "--epochs", "1", "--seed", "1", "--out", str(tmp_path / "dnn")]
    script = f"""
set -u
nj=2
cmd="slurm --cpus-per-task=1 --time=10"
. {REPO}/utils/stages.sh
bg_job {tmp_path}/hello.log python -c 'import socket; print("hello from", socket.gethostname())'
bg_job {tmp_path}/train.log {' '.join(train)}
bg_wait; echo "first wait: $?"
bg_job {tmp_path}/fails.log bash -c 'echo about to fail; exit 3'
bg_wait; echo "second wait: $?"
"""
    r = subprocess.run(["bash", "-c", script], env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, cwd=tmp_path)
    assert "first wait: 0" in r.stdout and "second wait: 1" in r.stdout, r.stdout + r.stderr
    assert "hello from" in (tmp_path / "hello.log").read_text()
    assert (tmp_path / "dnn" / "best.pt").is_file() and "best dev frame accuracy" in (tmp_path / "train.log").read_text()
    assert "about to fail" in (tmp_path / "fails.log").read_text()
    ids = {int((tmp_path / f"{n}.log.jobid").read_text()) for n in ("hello", "train", "fails")}
    assert len(ids) == 3  # three distinct Slurm job ids
    assert subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip() == ""


def test_an_unknown_cmd_is_an_error(tmp_path):
    r = subprocess.run(["bash", "-c", f"nj=1; cmd=pbs; . {REPO}/utils/stages.sh; bg_job {tmp_path}/x.log true; bg_wait; echo rc=$?"],
                       capture_output=True, text=True)
    assert "rc=1" in r.stdout and "--cmd must be" in (tmp_path / "x.log").read_text()
