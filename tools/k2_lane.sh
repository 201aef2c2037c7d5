#!/usr/bin/env bash
# The k2 lane: a Python 3.9 environment (.venv-k2) with torch 1.13.1, torchaudio 0.13.1, k2 1.23.4
# and numpy<2 (tools/k2-requirements.txt) plus asr_kd itself (--no-deps: its main pins are torch
# 2.9.1), then the k2 tests (tests/k2_lane). Idempotent: a stamp skips the install when nothing changed.
#   tools/k2_lane.sh            set up and run tests/k2_lane
#   tools/k2_lane.sh --setup    set up only (run.sh stage 14 and the k2 benchmark use .venv-k2)
#   tools/k2_lane.sh --check    exit 0 when a set-up finished (utils/step.sh asks before using .venv-k2)
# Python 3.9 is found as $PYTHON39, python3.9 on PATH, or pyenv's 3.9.x.
set -euo pipefail
cd "$(dirname "$0")/.."
setup_only=false
[ "${1:-}" = "--setup" ] && setup_only=true
venv=.venv-k2
stamp="$venv/.asr_kd_k2_setup"  # written last: a build cut short has a python but no packages
[ "${1:-}" = "--check" ] && { [ -x "$venv/bin/python" ] && [ -f "$stamp" ]; exit; }

py=${PYTHON39:-}
if [ -z "$py" ]; then
  for cand in python3.9 /root/.pyenv/versions/3.9*/bin/python3.9 "$HOME"/.pyenv/versions/3.9*/bin/python3.9; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null; then
      py=$cand; break
    fi
  done
fi
[ -n "$py" ] || { echo "k2_lane.sh: no Python 3.9 found (k2 1.23.4 on PyPI is Python 3.9 only); set PYTHON39" >&2; exit 1; }

want=$(cat tools/k2-requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -f "$stamp"  # the stamp says "complete" (--check): a build cut short leaves none
  free_gb=$(df -Pk . | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
  if [ "$free_gb" -lt 5 ] && [ ! -x "$venv/bin/python" ]; then  # torch 1.13.1 with its CUDA 11 libraries: 3.7 GB
    echo "k2_lane.sh: $venv needs about 5 GB of disk; $free_gb GB free on $(pwd)" >&2; exit 1
  fi
  echo "k2_lane.sh: creating $venv with $("$py" --version 2>&1)"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r tools/k2-requirements.txt
  "$venv/bin/python" -m pip install -q --no-deps -e .
  "$venv/bin/python" -c "import k2, torch, kaldi_hmm_gmm, asr_kd.decode.k2_decoder as m; print('k2_lane.sh: ok, k2', m.k2_version(), 'torch', torch.__version__)"
  echo "$want" > "$stamp"
fi
$setup_only && exit 0
exec "$venv/bin/python" -m pytest tests/k2_lane "${@}"
