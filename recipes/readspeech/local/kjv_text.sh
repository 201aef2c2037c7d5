#!/usr/bin/env bash
# The default text of the read-speech corpus: the King James Bible (1611; public domain), from
# Debian's bible-kjv package (installed with apt-get when missing and we are root), one sentence
# or clause a line (verses split after . ! ? ; :), verse references dropped.
# Usage: local/kjv_text.sh <out.txt>
set -euo pipefail
[ $# -eq 1 ] || { echo "Usage: $0 <out.txt>" >&2; exit 1; }
out=$1
if [ -s "$out" ]; then echo "$0: $out exists"; exit 0; fi
if ! command -v bible >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends bible-kjv >/dev/null 2>&1 || \
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends bible-kjv >/dev/null; }
  else
    echo "$0: the 'bible' program is missing: apt-get install bible-kjv (or pass --text FILE, one sentence a line)" >&2
    exit 1
  fi
fi
mkdir -p "$(dirname "$out")"
bible -f "Gen1:1-Rev22:21" | python -c '
import sys
from asr_kd.data.text import split_sentences
for line in sys.stdin:
    ref, _, verse = line.strip().partition(" ")
    for s in split_sentences(verse):
        print(s)
' > "$out.tmp"
mv "$out.tmp" "$out"
echo "$0: $(wc -l < "$out") lines, $(wc -w < "$out") words in $out"
