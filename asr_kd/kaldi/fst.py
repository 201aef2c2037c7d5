"""FST helpers over kaldifst: arc mapping (the bindings cannot edit arcs in place), Kaldi's word
insertion penalty, and G.fst from an ARPA file (kaldilm, in a subprocess)."""

import os
import subprocess
import sys
from pathlib import Path

from asr_kd.kaldi import kaldifst
from asr_kd.utils.io import atomic_path


def map_arcs(fst, arc_fn):
    """A copy of ``fst`` with every arc replaced by ``arc_fn(arc)`` -> (ilabel, olabel, weight)."""
    out = kaldifst.StdVectorFst()
    for _ in range(fst.num_states):
        out.add_state()
    out.start = fst.start
    for s in range(fst.num_states):
        final = fst.final(s)
        if final != kaldifst.TropicalWeight.zero:
            out.set_final(state=s, weight=final)
        for arc in kaldifst.ArcIterator(fst, s):
            ilabel, olabel, weight = arc_fn(arc)
            out.add_arc(
                state=s, arc=kaldifst.StdArc(ilabel=ilabel, olabel=olabel, weight=weight, nextstate=arc.nextstate)
            )
    return out


def with_word_penalty(fst, penalty: float):
    """A copy of ``fst`` whose word-emitting arcs cost ``penalty`` more (Kaldi's word insertion penalty)."""
    return map_arcs(fst, lambda a: (a.ilabel, a.olabel, a.weight.value + (penalty if a.olabel != 0 else 0.0)))


def read_fst(path):
    """The FST at ``path``, or None when it cannot be read (OpenFst's own complaint, printed by
    C++ on stderr, is held back: the caller names the file in its own message)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            return kaldifst.StdVectorFst.read(str(path))
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def arpa_to_fst(arpa_path, words_txt, out_path) -> None:
    """G.fst (OpenFst binary, input-label sorted) from an ARPA file, through kaldilm in a subprocess
    (kaldilm must not be imported next to kaldi_hmm_gmm: the import order can deadlock)."""
    txt = Path(out_path).with_suffix(".fst.txt")
    with atomic_path(txt) as tmp:
        with open(tmp, "w") as f:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kaldilm",
                    f"--read-symbol-table={words_txt}",
                    "--disambig-symbol=#0",
                    str(arpa_path),
                ],
                stdout=f,
                stderr=subprocess.PIPE,
                check=True,
            )
    g = kaldifst.compile(s=Path(txt).read_text(), acceptor=False)
    kaldifst.arcsort(g, sort_type="ilabel")
    with atomic_path(out_path) as tmp:
        g.write(str(tmp))
