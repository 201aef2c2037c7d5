# Sourced by recipe scripts: put the project's virtual environment first on PATH.
_asr_kd_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -x "$_asr_kd_root/.venv/bin/python" ]; then
  export PATH="$_asr_kd_root/.venv/bin:$PATH"
elif ! python3 -c "import asr_kd" 2>/dev/null; then
  echo "asr_kd is not installed: run $_asr_kd_root/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
export PYTHONUNBUFFERED=1
export PYTHONPATH="$_asr_kd_root${PYTHONPATH:+:$PYTHONPATH}"
