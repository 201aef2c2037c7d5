#!/usr/bin/env bash
# Debian's slurm-wlm (a real single-node Slurm for tests/test_slurm.py), when it is missing and we
# run as root with apt-get; otherwise says why not and exits 0 (that test then reports a skip).
set -uo pipefail
if command -v slurmctld > /dev/null && command -v slurmd > /dev/null; then
  echo "install_slurm.sh: slurm-wlm is installed"; exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
  echo "install_slurm.sh: slurm-wlm missing and not root with apt-get: tests/test_slurm.py will be skipped" >&2; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q slurm-wlm > /tmp/install_slurm.log 2>&1 || \
  { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q slurm-wlm > /tmp/install_slurm.log 2>&1; } || \
  { echo "install_slurm.sh: apt-get install slurm-wlm failed (see /tmp/install_slurm.log)" >&2; exit 0; }
echo "install_slurm.sh: installed $(slurmctld -V 2>/dev/null)"
