"""The recipes' --cmd slurm against a real single-node Slurm (Debian's slurm-wlm, started here on
localhost with its own ports): jobs run as Slurm jobs, their output lands in the job logs, and a
failing job fails bg_wait; the library's own fan-out (alignment, decoding, soft-target shards) run
as Slurm jobs equals the local result. ``./setup.sh --dev`` installs slurm-wlm when it runs as root."""

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
    daemons = [
        subprocess.Popen(["slurmctld", "-D", "-i"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["slurmd", "-D"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
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
    train = [
        sys.executable,
        "-m",
        "asr_kd",
        "train-dnn",
        "--ali-dir",
        str(root / "exp"),
        "--fbank-dir",
        str(tiny_features / "fbank"),
        "--epochs",
        "1",
        "--seed",
        "1",
        "--out",
        str(tmp_path / "dnn"),
    ]
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
    r = subprocess.run(
        ["bash", "-c", script], env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, cwd=tmp_path
    )
    assert "first wait: 0" in r.stdout and "second wait: 1" in r.stdout, r.stdout + r.stderr
    assert "hello from" in (tmp_path / "hello.log").read_text()
    assert (tmp_path / "dnn" / "best.pt").is_file() and "best dev frame accuracy" in (
        tmp_path / "train.log"
    ).read_text()
    assert "about to fail" in (tmp_path / "fails.log").read_text()
    ids = {int((tmp_path / f"{n}.log.jobid").read_text()) for n in ("hello", "train", "fails")}
    assert len(ids) == 3  # three distinct Slurm job ids
    assert subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip() == ""


def test_data_parallel_training_runs_as_one_slurm_job_of_two_tasks(slurm, tiny_graph, tiny_features, tmp_path):
    """--ddp-procs 2 under --cmd slurm: one job, srun starts the two ranks, which meet through
    Slurm's environment (asr_kd.nnet.distributed) and end with identical weights."""
    env, _ = slurm
    root, _ = tiny_graph
    conf = tmp_path / "conf.yaml"
    conf.write_text(
        "model:\n  context: 3\n  hidden: 64\n  num_layers: 2\ntrain:\n  batch_size: 64\n  ddp: average\n  sync_every: 2\n"
    )
    script = f"""
set -u
nj=2; ddp_procs=2
cmd="slurm --time=10"
. {REPO}/utils/stages.sh
ddp_job {tmp_path}/ddp.log train-dnn --config {conf} --ali-dir {root / 'exp'} --fbank-dir {tiny_features / 'fbank'} \
  --epochs 2 --seed 1 --out {tmp_path}/dnn
bg_wait; echo "wait: $?"
"""
    path = f"{Path(sys.executable).parent}:{env['PATH']}"  # the job's `python` is this interpreter
    r = subprocess.run(
        ["bash", "-c", script],
        env={**env, "PYTHONPATH": str(REPO), "PATH": path},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    log = (tmp_path / "ddp.log").read_text() if (tmp_path / "ddp.log").exists() else ""
    assert "wait: 0" in r.stdout, r.stdout + r.stderr + log[-3000:]
    ranks = __import__("json").loads((tmp_path / "dnn" / "ranks.json").read_text())
    assert ranks["world"] == 2 and len(set(ranks["weights_digests"])) == 1
    assert (tmp_path / "ddp.log.jobid").read_text().strip().isdigit()  # one Slurm job
    assert (tmp_path / "dnn" / "best.pt").is_file()


def test_an_unknown_cmd_is_an_error(tmp_path):
    r = subprocess.run(
        ["bash", "-c", f"nj=1; cmd=pbs; . {REPO}/utils/stages.sh; bg_job {tmp_path}/x.log true; bg_wait; echo rc=$?"],
        capture_output=True,
        text=True,
    )
    assert "rc=1" in r.stdout and "--cmd must be" in (tmp_path / "x.log").read_text()


def test_python_fan_out_through_slurm_equals_local(slurm, tiny_graph, tiny_features, tmp_path, monkeypatch):
    """--cmd slurm for the library's own fan-out: a split's alignment, soft-target shards and Kaldi
    decoding run as Slurm jobs (distinct job logs) and give exactly the local result."""
    import numpy as np
    from lhotse import CutSet

    from asr_kd.stages.align import train_and_align
    from asr_kd.decode.kaldi_decoder import decode
    from asr_kd.distill.soft_targets import soft_targets_for_split
    from asr_kd.gmm.mono import GmmAligner, MonoConfig
    from tests.conftest import oracle_loglikes

    env, _ = slurm
    monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the jobs import this asr_kd
    cmd = "slurm --cpus-per-task=1 --time=10"
    root, _ = tiny_graph
    fbank = tiny_features / "fbank"

    # alignment: the fixture's monophone system retrained, its splits aligned as 2 Slurm jobs each
    cfg = MonoConfig(num_iters=6, max_iter_inc=4, realign_iters=(1, 2, 3, 4), total_gauss=120)
    train_and_align(
        fbank,
        "digits",
        ["train", "dev", "test"],
        lang_dir=root / "lang",
        exp_dir=tmp_path / "mono",
        cfg=cfg,
        nj=2,
        cmd=cmd,
    )
    assert len(list((tmp_path / "mono" / "jobs").glob("align.*.log"))) == 2
    for split in ("train", "dev", "test"):
        local = {c.id: c.load_pdf_ali() for c in CutSet.from_file(root / "exp" / f"digits_{split}_cuts.jsonl.gz")}
        slurm_ali = {
            c.id: c.load_pdf_ali() for c in CutSet.from_file(tmp_path / "mono" / f"digits_{split}_cuts.jsonl.gz")
        }
        assert local.keys() == slurm_ali.keys() and all(np.array_equal(local[u], slurm_ali[u]) for u in local), split

    # decoding: oracle likelihoods through the HCLG, 2 Slurm jobs against one local process
    tm = GmmAligner.load(root / "exp" / "final.mdl", root / "lang").tm
    _, loglikes = oracle_loglikes(root / "exp", tm)
    here = decode(root / "graph" / "HCLG.fst", tm, loglikes, nj=1)
    there = decode(root / "graph" / "HCLG.fst", tm, loglikes, nj=2, cmd=cmd, job_dir=tmp_path / "decode_jobs")
    assert here == there and len(here) == len(loglikes)
    assert len(list((tmp_path / "decode_jobs").glob("decode.*.log"))) == 2

    # soft-target shards: a teacher trained for one epoch, top-5 targets in 2 shards, local and as Slurm jobs
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr_kd",
            "train-dnn",
            "--ali-dir",
            str(root / "exp"),
            "--fbank-dir",
            str(fbank),
            "--epochs",
            "1",
            "--seed",
            "1",
            "--out",
            str(tmp_path / "teacher"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    teacher = [str(tmp_path / "teacher" / "best.pt")]
    metas = {
        where: soft_targets_for_split(
            root / "exp",
            fbank,
            "digits",
            split="train",
            teachers=teacher,
            out_dir=tmp_path / f"soft_{where}",
            temperature=2.0,
            topk=5,
            num_jobs=2,
            cmd=c,
        )
        for where, c in (("local", "local"), ("slurm", cmd))
    }
    assert metas["local"]["num_frames"] == metas["slurm"]["num_frames"] > 0
    assert len(list((tmp_path / "soft_slurm" / "jobs").glob("soft_targets.*.log"))) == 2
    cuts = {w: {c.id: c for c in CutSet.from_file(tmp_path / f"soft_{w}" / "cuts.jsonl.gz")} for w in metas}
    for cid, c in cuts["local"].items():
        s = cuts["slurm"][cid]
        assert np.array_equal(c.load_soft_idx(), s.load_soft_idx()) and np.array_equal(
            c.load_soft_logp(), s.load_soft_logp()
        )


def test_a_bad_cmd_is_refused_before_any_work():
    from asr_kd.utils.jobs import JobCmd

    assert JobCmd.parse("slurm --mem=4G --time=1:00:00").options == ("--mem=4G", "--time=1:00:00")
    assert JobCmd.parse("local").local
    for bad in ("pbs", "local --mem=1G", "slurm mem=4G"):
        with pytest.raises(ValueError, match="--cmd"):
            JobCmd.parse(bad)


def test_a_failed_slurm_job_is_an_error_naming_its_log(slurm, tmp_path, monkeypatch):
    import math
    import operator

    from asr_kd.utils.jobs import run_jobs

    env, _ = slurm
    monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    cmd = "slurm --time=5"
    assert run_jobs(cmd, operator.add, [(1, 2), (3, 4)], job_dir=tmp_path, name="add") == [3, 7]
    with pytest.raises(RuntimeError, match=r"bad\.1 failed; see .*bad\.1\.log") as e:
        run_jobs(cmd, math.sqrt, [(-1.0,)], job_dir=tmp_path, name="bad")
    assert "math domain error" in str(e.value) and "math domain error" in (tmp_path / "bad.1.log").read_text()
