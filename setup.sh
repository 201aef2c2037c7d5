#!/usr/bin/env bash
# Creates ./.venv and installs asr_kd with its pinned dependencies.
# Idempotent: a stamp (hash of pyproject.toml + extras) makes the second run a no-op.
# Also builds kenlm's lmplz into .venv/bin (tools/install_lmplz.sh; apt-get for its build
# headers when root); if that fails the LM stages use asr_kd's Python Kneser-Ney estimator.
# ASR_KD_NO_LMPLZ=1 skips it.
# Then builds the k2 environment .venv-k2 (tools/k2_lane.sh --setup: Python 3.9, torch 1.13.1,
# k2 1.23.4), which every speech recipe's stage 14 decodes with. --no-k2 (or ASR_KD_NO_K2=1) skips
# it; the recipes then state k2's absence in their tables instead of failing.
#   ./setup.sh          recipe extras (synthesis, plots) and k2
#   ./setup.sh --dev    also the test tools (and Debian's slurm-wlm, as root, for the Slurm test)
#   ./setup.sh --no-k2  without the k2 environment
set -euo pipefail
cd "$(dirname "$0")"

extras="synth,plot"
for arg in "$@"; do
  case "$arg" in
    --dev) extras="synth,plot,dev" ;;
    --no-k2) export ASR_KD_NO_K2=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  echo "setup.sh: creating $venv with $($python --version 2>&1)"
  "$python" -m venv "$venv"
fi

lmplz() {
  [ "${ASR_KD_NO_LMPLZ:-0}" = 1 ] && return 0
  PYTHON_FOR_PIP="$venv/bin/python" tools/install_lmplz.sh "$venv/bin" || \
    echo "setup.sh: lmplz not built; ARPA LMs will come from the Python Kneser-Ney fallback" >&2
}

k2_env() {
  if [ "${ASR_KD_NO_K2:-0}" = 1 ]; then
    echo "setup.sh: k2 skipped (--no-k2 / ASR_KD_NO_K2=1): stage 14 will state its absence"
    return 0
  fi
  local log=.venv-k2.setup.log
  if tools/k2_lane.sh --setup 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" = 0 ]; then
    rm -f .venv-k2.unavailable
  else  # the recipes' stage 14 reads the reason and states k2's absence instead of failing
    tail -n 1 "$log" > .venv-k2.unavailable
    echo "setup.sh: the k2 environment was not built ($(cat .venv-k2.unavailable)); stage 14 will state k2's absence" >&2
  fi
}
slurm() {  # dev only: tests/test_slurm.py starts a real single-node Slurm (apt-get, as root)
  [ "$extras" = "synth,plot,dev" ] && tools/install_slurm.sh
  return 0
}
others() { lmplz; k2_env; slurm; }

stamp="$venv/.asr_kd_setup"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1) [$extras]"
if [ -f "$stamp" ] && grep -qxF "$want" "$stamp"; then
  echo "setup.sh: $venv is up to date ([$extras])"
  others
  exit 0
fi
# A --dev stamp also satisfies a plain set-up.
if [ "$extras" = "synth,plot" ] && [ -f "$stamp" ] && \
   grep -qxF "${want% *} [synth,plot,dev]" "$stamp"; then
  echo "setup.sh: $venv is up to date ([synth,plot,dev])"
  others
  exit 0
fi

"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -e ".[$extras]"
"$venv/bin/python" -c "import asr_kd, lhotse, torch, kaldi_hmm_gmm; print('setup.sh: ok, torch', torch.__version__, 'lhotse', lhotse.__version__)"
echo "$want" > "$stamp"
others
