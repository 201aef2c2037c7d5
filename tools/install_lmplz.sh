#!/usr/bin/env bash
# Builds kenlm's lmplz and build_binary from the PyPI sdist (kenlm 0.3.0, checksum pinned) into a bin folder (default .venv/bin).
# They are not packaged in Debian 12; the build needs cmake, a C++ compiler and Boost/zlib/bz2/lzma
# headers, which are installed with apt-get when missing and we are root (the only apt use).
# Exit status 0 on success; on failure the decode stages fall back to asr_kd's Python estimator.
#   tools/install_lmplz.sh [BIN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=${1:-.venv/bin}
python=${PYTHON_FOR_PIP:-.venv/bin/python}
[ -x "$python" ] || python=python3
if [ -x "$bin_dir/lmplz" ] && [ -x "$bin_dir/build_binary" ]; then
  echo "install_lmplz.sh: $bin_dir/lmplz already built"; exit 0
fi

debs="cmake g++ make libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev"
missing=$(for d in $debs; do dpkg -s "$d" >/dev/null 2>&1 || echo "$d"; done | tr '\n' ' ')
if [ -n "${missing// /}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "install_lmplz.sh: apt-get install $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || \
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends $missing >/dev/null; }
  else
    echo "install_lmplz.sh: missing packages ($missing) and no root apt-get: not building lmplz" >&2
    exit 1
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The pinned sdist is fetched directly: `pip download` of an sdist would build its build
# dependencies (cmake) from source under --no-binary.
"$python" - "$work/kenlm.tar.gz" <<'PY'
import hashlib, sys, urllib.request
url = "https://files.pythonhosted.org/packages/02/6e/f4e159cef39ea4ef2244b4aa32857d447d60a5d0ee269e1b1f8d3723c03e/kenlm-0.3.0.tar.gz"
sha = "c4628bb9fb63c8a6f9240035b8b037385cfc404cb72e933cf48878291edac1e8"
blob = urllib.request.urlopen(url, timeout=120).read()
if hashlib.sha256(blob).hexdigest() != sha:
    sys.exit("install_lmplz.sh: kenlm-0.3.0.tar.gz checksum mismatch")
open(sys.argv[1], "wb").write(blob)
PY
tar -xzf "$work/kenlm.tar.gz" -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'kenlm-*' | head -1)
mkdir -p "$src/build"
if ! ( cd "$src/build" && cmake .. -DCMAKE_BUILD_TYPE=Release && make -j"$(nproc)" lmplz build_binary ) > "$work/build.log" 2>&1; then
  tail -20 "$work/build.log" >&2
  echo "install_lmplz.sh: the kenlm build failed (log tail above)" >&2
  exit 1
fi
mkdir -p "$bin_dir"
install -m 755 "$src/build/bin/lmplz" "$src/build/bin/build_binary" "$bin_dir/"
echo "install_lmplz.sh: installed lmplz and build_binary in $bin_dir"
