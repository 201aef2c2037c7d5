#!/usr/bin/env bash
# Creates ./.venv and installs asr_kd with its pinned dependencies.
# Idempotent: a stamp (hash of pyproject.toml + extras) makes the second run a no-op.
# Also builds kenlm's lmplz into .venv/bin (tools/install_lmplz.sh; apt-get for its build
# headers when root); if that fails the LM stages use asr_kd's Python Kneser-Ney estimator.
# ASR_KD_NO_LMPLZ=1 skips it.
#   ./setup.sh          recipe extras (synthesis, plots)
#   ./setup.sh --dev    also the test tools
set -euo pipefail
cd "$(dirname "$0")"

extras="synth,plot"
for arg in "$@"; do
  case "$arg" in
    --dev) extras="synth,plot,dev" ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
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

stamp="$venv/.asr_kd_setup"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1) [$extras]"
if [ -f "$stamp" ] && grep -qxF "$want" "$stamp"; then
  echo "setup.sh: $venv is up to date ([$extras])"
  lmplz
  exit 0
fi
# A --dev stamp also satisfies a plain set-up.
if [ "$extras" = "synth,plot" ] && [ -f "$stamp" ] && \
   grep -qxF "${want% *} [synth,plot,dev]" "$stamp"; then
  echo "setup.sh: $venv is up to date ([synth,plot,dev])"
  lmplz
  exit 0
fi

"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -e ".[$extras]"
"$venv/bin/python" -c "import asr_kd, lhotse, torch, kaldi_hmm_gmm; print('setup.sh: ok, torch', torch.__version__, 'lhotse', lhotse.__version__)"
echo "$want" > "$stamp"
lmplz
